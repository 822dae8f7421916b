"""What an executor pool hands out: :class:`ExecutorConnection`, a lease on
one thread-bound DB-API connection, and the objects ``acquire()`` and
``transaction()`` return (awaitable, and async context managers).

Every call on a lease returns a Future (so ``await`` and ``yield`` both
work) that resolves on the loop when the connection's thread returns.  After
release every call raises :class:`~tornpool.errors.ConnectionReleased`.  A
lease given back while its thread still runs a call (the caller was
cancelled, or did not wait) is detached at once, but the pool takes the
connection back only when that thread returns -- and then closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tornpool.errors import ConnectionReleased
from tornpool.pool import Lease
from tornpool.scope import transaction_scope

from . import _executor_calls as calls
from ._executor_bound import BoundConnection, CallFuture

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.pool import PoolEngine

__all__ = ["ExecutorConnection", "AcquireScope", "TransactionScope"]


class ExecutorConnection(Lease[BoundConnection]):
    """A lease on one pooled DB-API connection (``async with pool.acquire()
    as conn``).  Placeholders are the driver's own (``pool.paramstyle``)."""

    __slots__ = ()

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float | None,
              sql: Any) -> CallFuture:
        engine = self.pool_engine
        if engine is None:
            fut = CallFuture(loop=asyncio.get_running_loop())
            fut.set_exception(ConnectionReleased(0, "this connection was released to its pool"))
            return fut
        fut = CallFuture(loop=engine.bind())
        self.connection.run(fut, fn, args, timeout, self, sql)
        return fut

    # -- statements ----------------------------------------------------------------------

    def execute(self, sql: Any, params: Any = None, *, timeout: float | None = None) -> CallFuture:
        """Run one statement in this connection's thread and read its whole
        result there.

        :param params: for the driver's placeholders; None sends none.
        :param timeout: seconds; then :class:`~tornpool.errors.CommandTimeout`
            (the connection is closed once its thread returns).
        :returns: (resolves to) a :class:`~tornpool.dbapi.Result`.
        :raises ConnectionReleased: the lease was given back.
        :raises ConnectionBusy: another call runs on this lease.
        :raises ConnectionClosed: a call on it was cancelled or timed out.
        :raises: the driver's own errors, unchanged.
        """
        return self._call(calls.statement, (sql, params, False), timeout, sql)

    def executemany(self, sql: Any, seq_of_params: Iterable[Any], *,
                    timeout: float | None = None) -> CallFuture:
        """The driver's ``executemany`` (inside whatever transaction this
        lease has open).

        :returns: (resolves to) a :class:`~tornpool.dbapi.Result` without
            rows; ``rowcount`` as the driver reports it.
        :raises: as :meth:`execute`.
        """
        return self._call(calls.many, (sql, list(seq_of_params), None, False), timeout, sql)

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> CallFuture:
        """``fn(dbapi_connection, *args)`` in this connection's thread, for
        anything the methods here do not cover (a driver's COPY, a backup,
        ``create_function``).  Never touch that connection outside ``fn``.

        :returns: (resolves to) what ``fn`` returns.
        :raises: what ``fn`` raises; as :meth:`execute`.
        """
        return self._call(fn, args, timeout, None)

    def begin(self, *, timeout: float | None = None) -> CallFuture:
        """Open a transaction: the pool's ``begin_sql`` in autocommit mode;
        nothing without autocommit (the driver opens one by itself).
        Resolves to None."""
        if self.released:
            return self._call(_nothing, (), timeout, None)  # raises ConnectionReleased
        binding = self.connection.binding
        if not binding.autocommit:
            return self._call(_nothing, (), timeout, None)
        sql = binding.begin_sql
        return self._call(calls.run_sql, (sql,), timeout, sql)

    def commit(self, *, timeout: float | None = None) -> CallFuture:
        """COMMIT; resolves to None."""
        return self._end("COMMIT", timeout)

    def rollback(self, *, timeout: float | None = None) -> CallFuture:
        """ROLLBACK; resolves to None."""
        return self._end("ROLLBACK", timeout)

    def _end(self, word: str, timeout: float | None) -> CallFuture:
        autocommit = self.released or self.connection.binding.autocommit
        return self._call(calls.end_transaction, (word, autocommit), timeout, word)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[ExecutorConnection]:
        """``async with conn.transaction():`` BEGIN, COMMIT on success,
        ROLLBACK on error (tornpool's one transaction scope)."""
        async with transaction_scope(self):
            yield self

    # -- state ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once released, or once the connection is closing."""
        return self.released or self.connection.closed or self.connection.unusable

    @property
    def busy(self) -> bool:
        """True while a call runs in the connection's thread."""
        return not self.released and self.connection.busy

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction was open when the last call returned."""
        return self.connection.in_transaction

    # -- giving back ---------------------------------------------------------------------

    def release(self, quiet: bool = False) -> None:
        """Give the connection back (synchronous, idempotent).  A transaction
        left open is rolled back, with a warning unless ``quiet``.  With a
        call still running, the lease is detached now and the pool takes the
        connection back -- to close it -- when the thread returns."""
        engine = self.pool_engine
        if engine is None:
            return
        conn = self.connection
        if not conn.busy:
            super().release(quiet)
            return
        slot = engine.fleet.find(conn)
        self.detach()
        conn.abandon()
        if slot is not None:
            conn.when_idle(lambda: engine.release(slot, quiet=True))

    async def close(self) -> None:
        """Close the underlying connection and give the lease back (the pool
        opens a replacement).  A no-op once released."""
        if self.released:
            return
        self.connection.terminate()
        self.release(quiet=True)

    def terminate(self) -> None:
        """Close the underlying connection as soon as its thread is idle
        (the lease stays yours until released)."""
        if not self.released:
            self.connection.terminate()

    def __enter__(self) -> ExecutorConnection:
        return self

    async def __aenter__(self) -> ExecutorConnection:
        return self


def _nothing(conn: Any) -> None:
    return None


class AcquireScope:
    """What :meth:`ExecutorPool.acquire` returns: ``async with`` it, or
    await / yield it for the lease (itself a context manager)."""

    __slots__ = ("_engine", "_timeout", "_lease")

    def __init__(self, engine: PoolEngine[BoundConnection], timeout: float | None) -> None:
        self._engine = engine
        self._timeout = timeout
        self._lease: ExecutorConnection | None = None

    async def _get(self) -> ExecutorConnection:
        lease = await self._engine.acquire(self._timeout)
        assert isinstance(lease, ExecutorConnection)
        return lease

    def __await__(self) -> Generator[Any, None, ExecutorConnection]:
        return self._get().__await__()

    async def __aenter__(self) -> ExecutorConnection:
        self._lease = await self._get()
        return self._lease

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release(quiet=et is not None)


class TransactionScope:
    """What :meth:`ExecutorPool.transaction` returns without statements:
    ``async with`` it (BEGIN, COMMIT / ROLLBACK, release), or await / yield
    it for a lease with BEGIN done (``with tx:`` releases it, rolling back
    what was not committed)."""

    __slots__ = ("_acquire", "_stack")

    def __init__(self, acquire: AcquireScope) -> None:
        self._acquire = acquire
        self._stack: contextlib.AsyncExitStack | None = None

    async def _begin(self) -> ExecutorConnection:
        lease = await self._acquire
        try:
            await lease.begin()
        except BaseException:
            lease.release(quiet=True)
            raise
        return lease

    def __await__(self) -> Generator[Any, None, ExecutorConnection]:
        return self._begin().__await__()

    async def __aenter__(self) -> ExecutorConnection:
        stack = contextlib.AsyncExitStack()
        lease = await stack.enter_async_context(self._acquire)
        try:
            await stack.enter_async_context(transaction_scope(lease))
        except BaseException:
            await stack.__aexit__(*sys.exc_info())
            raise
        self._stack = stack
        return lease

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(et, e, tb)

