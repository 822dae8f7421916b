"""What :class:`tornpool.Pool` hands out: :class:`PoolConnection`, a lease on
one pooled :class:`~tornpool.Connection`.

It has the connection's API (``execute``, ``cursor()``, ``executemany``,
``callproc``, ``begin``/``commit``/``rollback``, ``transaction()``...), all of
which raise :class:`~tornpool.errors.ConnectionReleased` once the lease is
given back -- and so do its cursors when they would need the connection.  It
releases itself on exit of ``with`` (``with (yield pool.acquire()) as
conn:`` under ``@gen.coroutine``) and ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tornpool.errors import ConnectionReleased
from tornpool.pool.lease import Lease
from tornpool.scope import transaction_scope

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.async_cursor import AsyncCursor
    from tornpool.connection import Connection
    from tornpool.cursors import Cursor

__all__ = ["PoolConnection"]


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_exception(exc)
    return fut


class PoolConnection(Lease["Connection"]):
    """A lease on a pooled connection; see the module docstring."""

    __slots__ = ()

    # -- statements (Futures, like the connection's) ---------------------------------

    def execute(self, query: str | bytes, args: Any = None, *, timeout: float | None = None,
                cursor: type[Any] | None = None) -> asyncio.Future[Any]:
        """Run one statement; resolves to a cursor bound to this lease.

        :raises ConnectionReleased: the lease was given back.
        """
        try:
            conn = self.connection
        except ConnectionReleased as exc:
            return _failed(exc)
        return conn.execute_on(query, args, timeout, cursor, self)

    async def executemany(self, query: str, seq_of_args: Iterable[Any], *,
                          timeout: float | None = None, cursor: type[Any] | None = None) -> Cursor:
        """Run ``query`` for each parameter set; resolves to a cursor."""
        return await self.connection.executemany(query, seq_of_args, timeout=timeout,
                                                 cursor=cursor, handle=self)

    async def callproc(self, procname: str, args: Sequence[Any] = (), *,
                       timeout: float | None = None, cursor: type[Any] | None = None) -> Cursor:
        """Call a stored procedure; resolves to a cursor on its first result set."""
        return await self.connection.callproc(procname, args, timeout=timeout,
                                              cursor=cursor, handle=self)

    def cursor(self, cursorclass: Any = None) -> AsyncCursor:
        """A DB-API cursor on this lease (see :mod:`tornpool.async_cursor`).

        :raises ConnectionReleased: the lease was given back.
        """
        from tornpool.async_cursor import AsyncCursor

        conn = self.connection
        return AsyncCursor(self, conn.cursor_class if cursorclass is None else cursorclass)

    def _simple(self, name: str, *args: Any, timeout: float | None = None) -> asyncio.Future[None]:
        try:
            conn = self.connection
        except ConnectionReleased as exc:
            return _failed(exc)
        result: asyncio.Future[None] = getattr(conn, name)(*args, timeout=timeout)
        return result

    def ping(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """COM_PING; resolves to None."""
        return self._simple("ping", timeout=timeout)

    def begin(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Start a transaction; resolves to None."""
        return self._simple("begin", timeout=timeout)

    def commit(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Commit the current transaction; resolves to None."""
        return self._simple("commit", timeout=timeout)

    def rollback(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Roll back the current transaction; resolves to None."""
        return self._simple("rollback", timeout=timeout)

    def autocommit(self, value: bool, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Turn autocommit on or off for this lease (the pool restores its
        own setting on release); resolves to None."""
        return self._simple("autocommit", value, timeout=timeout)

    def select_db(self, database: str, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Change the default database for this lease (restored on
        release); resolves to None."""
        return self._simple("select_db", database, timeout=timeout)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PoolConnection]:
        """``async with conn.transaction():`` BEGIN, COMMIT on success,
        ROLLBACK on error (see :mod:`tornpool.scope`)."""
        async with transaction_scope(self):
            yield self

    def escape(self, value: Any) -> str:
        """Escape ``value`` as an SQL literal (no I/O)."""
        return self.connection.escape(value)

    def mogrify(self, query: str, args: Any = None) -> str:
        """The statement :meth:`execute` would send."""
        return self.connection.mogrify(query, args)

    def next_result(self, owner: object) -> asyncio.Future[Any]:
        """For cursors: see :meth:`tornpool.Connection.next_result`."""
        return self.connection.next_result(owner)

    # -- closing -----------------------------------------------------------------------

    async def close(self) -> None:
        """Close the underlying connection and give the lease back (the pool
        replaces the connection).  A no-op once released."""
        if self.released:
            return
        try:
            await self.connection.close()
        finally:
            self.release()

    def terminate(self) -> None:
        """Close the underlying connection at once (the lease stays yours
        until released)."""
        if not self.released:
            self.connection.terminate()

    # -- state ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once released or once the connection is closed."""
        return self.released or self.connection.closed

    @property
    def in_transaction(self) -> bool:
        """True if the server reported an open transaction."""
        return self.connection.in_transaction

    @property
    def busy(self) -> bool:
        """True while a command runs on the connection."""
        return self.connection.busy

    @property
    def thread_id(self) -> int:
        """The server's id for the connection."""
        return self.connection.thread_id

    @property
    def server_version(self) -> str:
        return self.connection.server_version

    @property
    def has_unread_result(self) -> bool:
        return self.connection.has_unread_result

    @property
    def session_dirty(self) -> bool:
        """True if this lease changed session state (restored on release)."""
        return self.connection.session_dirty

    def __enter__(self) -> PoolConnection:
        return self

    async def __aenter__(self) -> PoolConnection:
        return self
