"""TorMySQL's ``helpers``: a pool that runs statements itself, and
:class:`Transaction`.

``helpers.ConnectionPool`` takes the same arguments as
:class:`tornpool.tormysql.ConnectionPool` and adds:

* ``execute(query, params=None, cursor_cls=None)`` and ``executemany(...)``:
  a Future resolving to a closed buffered cursor whose rows stay readable.
  Without autocommit the statement is committed (rolled back if it failed);
  with autocommit it runs on tornpool's fast path (:meth:`tornpool.Pool.execute`);
* ``begin()``: a Future resolving to a :class:`Transaction` -- a connection
  inside BEGIN.  ``commit()``/``rollback()`` end it and give the connection
  back (a connection whose COMMIT or ROLLBACK failed is closed instead);
  ``async with await pool.begin() as tx:`` commits, or rolls back if the
  block raised; using it afterwards raises :class:`TransactionClosedError`.
  A Transaction dropped unfinished is logged, and its connection closed.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from tornpool.errors import InterfaceError
from tornpool.momoko.futures import relay
from tornpool.tormysql.cursor import Cursor, cursor_class, done, query_args, task
from tornpool.tormysql.log import get_log
from tornpool.tormysql.pool import Connection
from tornpool.tormysql.pool import ConnectionPool as BaseConnectionPool
from tornpool.tormysql.pool import ConnectionPoolClosedError, pool_error

__all__ = ["ConnectionPool", "Transaction", "TransactionClosedError"]


class TransactionClosedError(InterfaceError):  # type: ignore[misc]  # PyMySQL is untyped
    """The transaction was committed or rolled back already."""


def _buffered(cls: type[Cursor]) -> type[Cursor]:
    if cls.streaming:
        raise InterfaceError(0, "helpers return closed cursors, so they must be buffered; "
                                "stream on a connection: pool.Connection() and conn.cursor(SSCursor)")
    return cls


class Transaction:
    """A pooled connection inside BEGIN; see the module docstring."""

    def __init__(self, pool: BaseConnectionPool, connection: Connection) -> None:
        self._pool = pool
        self._connection: Connection | None = connection

    def _ensure_conn(self) -> Connection:
        conn = self._connection
        if conn is None:
            raise TransactionClosedError(0, "Transaction is closed already.")
        return conn

    def execute(self, query: str, params: Any = None, cursor_cls: Any = None) -> asyncio.Future[Cursor]:
        """Run one statement in the transaction; a Future resolving to its
        (closed, buffered) cursor."""
        return task(self._run("execute", query, params, cursor_cls))

    def executemany(self, query: str, params: Any = None,
                    cursor_cls: Any = None) -> asyncio.Future[Cursor]:
        """Run ``query`` once per parameter set; a Future resolving to the cursor."""
        return task(self._run("executemany", query, params, cursor_cls))

    async def _run(self, method: str, query: str, params: Any, cursor_cls: Any) -> Cursor:
        conn = self._ensure_conn()
        cursor = conn.cursor(_buffered(cursor_class(cursor_cls) or conn.default_cursor_class))
        await getattr(cursor, method)(query, params)
        await cursor.close()
        return cursor

    def commit(self) -> asyncio.Future[None]:
        """COMMIT and give the connection back; a Future resolving to None."""
        return task(self._finish("commit"))

    def rollback(self) -> asyncio.Future[None]:
        """ROLLBACK and give the connection back; a Future resolving to None."""
        return task(self._finish("rollback"))

    async def _finish(self, how: str) -> None:
        conn = self._ensure_conn()
        self._connection = None
        try:
            await getattr(conn, how)()
        except BaseException:
            if not conn.released:
                conn.discard()
            raise
        if not conn.released:
            conn.close()

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._connection is None:
            return
        if et is not None:
            await self.rollback()
        else:
            await self.commit()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._connection is not None:
            get_log().warning("Transaction has not committed or rollbacked %s.", self._connection)

    def __del__(self) -> None:
        conn = self.__dict__.get("_connection")
        if conn is None:
            return
        self._connection = None
        get_log().warning("Transaction has not committed or rollbacked %s.", conn)
        try:
            on_loop = asyncio.get_running_loop() is conn.pool.native.loop
        except RuntimeError:
            on_loop = False
        if on_loop and not conn.released:
            conn.discard()  # else tornpool reclaims the lease (rolling back)


class ConnectionPool(BaseConnectionPool):
    """:class:`tornpool.tormysql.ConnectionPool` with ``execute``,
    ``executemany`` and ``begin``; see the module docstring."""

    def execute(self, query: str, params: Any = None, cursor_cls: Any = None) -> asyncio.Future[Cursor]:
        """Run one statement on some connection; a Future resolving to its
        closed cursor (rows readable).

        :raises ConnectionPoolClosedError: the pool is closed (at once).
        :raises WaitConnectionTimeoutError: no connection in time.
        """
        cls = self._buffered_class(cursor_cls)
        if isinstance(cls, asyncio.Future):
            return cls
        if not self.autocommit:
            return task(self._on_connection("execute", query, params, cls))
        native = self.native.execute(query, query_args(params), cursor=cls.native_class)
        return relay(native, cls.holding, native.get_loop(), pool_error)

    def executemany(self, query: str, params: Any = None,
                    cursor_cls: Any = None) -> asyncio.Future[Cursor]:
        """Run ``query`` once per parameter set; a Future resolving to the
        closed cursor."""
        cls = self._buffered_class(cursor_cls)
        if isinstance(cls, asyncio.Future):
            return cls
        return task(self._on_connection("executemany", query, params, cls))

    def _buffered_class(self, cursor_cls: Any) -> type[Cursor] | asyncio.Future[Cursor]:
        """The cursor class to run with, or a failed Future to return.

        :raises ConnectionPoolClosedError: the pool is closed (at once).
        """
        if self.closed:
            raise ConnectionPoolClosedError(0, "Connection pool closed.")
        try:
            return _buffered(cursor_class(cursor_cls) or self.cursor_class)
        except InterfaceError as exc:
            return done(exc=exc)

    async def _on_connection(self, method: str, query: str, params: Any, cls: type[Cursor]) -> Cursor:
        async with await self.get_connection() as conn:
            cursor = conn.cursor(cls)
            await getattr(cursor, method)(query, params)
            await cursor.close()
            return cursor

    def begin(self) -> asyncio.Future[Transaction]:
        """A Future resolving to a :class:`Transaction` (BEGIN done).

        :raises ConnectionPoolClosedError: the pool is closed (at once).
        """
        if self.closed:
            raise ConnectionPoolClosedError(0, "Connection pool closed.")
        return task(self._begin())

    async def _begin(self) -> Transaction:
        conn = await self.get_connection()
        try:
            await conn.begin()
        except BaseException:
            if not conn.released:
                conn.close()
            raise
        return Transaction(self, conn)
