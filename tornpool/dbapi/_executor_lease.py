"""What an executor pool hands out: :class:`ExecutorConnection`, a lease on
one thread-bound DB-API connection.  ``acquire()`` and ``transaction()``
return the pool engine's scopes (:mod:`tornpool.pool.scopes`).

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
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from tornpool.errors import ConnectionReleased
from tornpool.pool import Lease
from tornpool.scope import transaction_scope

from . import _executor_calls as calls
from ._executor_bound import BoundConnection, CallFuture

__all__ = ["ExecutorConnection"]


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

