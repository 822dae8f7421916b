"""TorMySQL's ``ConnectionPool`` on :class:`tornpool.Pool`.

``ConnectionPool(max_connections=32, idle_seconds=7200,
wait_connection_timeout=8, debug_connection_used=False, **pymysql_args)``:
the four pool options are TorMySQL's, the rest are the connection's (see
:mod:`tornpool.tormysql.client`).  ``pool.Connection()`` (also ``connect()``,
``get_connection()``) returns a Future resolving to a pool
:class:`Connection`: a :class:`~tornpool.tormysql.client.Client` that goes back
to the pool on ``close()``, on leaving ``with conn:``, or -- after COMMIT
(ROLLBACK if the block raised; neither under autocommit) -- on leaving
``async with conn:``.

Where TorMySQL had defects, the facade keeps tornpool's contract instead:

* the cap is counted on the server: never more than ``max_connections``
  server connections, also under load and while connections are closing
  (TorMySQL #43);
* ``close()`` fails waiters, closes idle connections at once and the others
  as they come back -- or terminates them when ``timeout`` runs out (the
  Future then fails with :class:`ConnectionPoolUsedError`): nothing stays
  open after it;
* a connection given back inside a transaction is rolled back (and logged),
  never handed to the next user with the transaction still open;
* a request that cannot be served fails typed: after
  ``wait_connection_timeout`` seconds (:class:`WaitConnectionTimeoutError`),
  or at once when no connection is alive and the server is unreachable
  (:class:`~tornpool.errors.PoolUnavailable`, an ``OperationalError``);
* ``read_timeout`` (a connection argument) bounds each statement (#39).

One difference that is not a fix: the pool keeps one connection open (it
opens it on first use), where TorMySQL closed even the last idle one after
``idle_seconds``; it is what lets the pool reconnect by itself after an
outage while requests fail fast.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import weakref
from types import TracebackType
from typing import Any

import tornpool
from tornpool.errors import (
    ConnectionReleased,
    ForeignConnection,
    MySQLError,
    PoolClosed,
    PoolError,
    PoolTimeout,
)
from tornpool.momoko.futures import finish, runs_to_the_end_now
from tornpool.tormysql.client import Client, connect_arguments
from tornpool.tormysql.cursor import Cursor, done, task
from tornpool.tormysql.log import get_log

__all__ = [
    "ConnectionPool", "Connection", "LentConnection",
    "ConnectionPoolClosedError", "ConnectionPoolUsedError", "ConnectionNotFoundError",
    "ConnectionNotUsedError", "ConnectionUsedError", "WaitConnectionTimeoutError", "pool_error",
]

#: ``close()`` without a timeout waits for every connection to come back.
_FOREVER = 365 * 86400.0


class ConnectionPoolClosedError(PoolClosed):
    """The pool is closed."""


class ConnectionPoolUsedError(PoolError):
    """``close(timeout)`` ran out of time with connections still in use;
    they were terminated."""


class ConnectionNotFoundError(ForeignConnection):
    """The connection given back does not belong to this pool."""


class ConnectionNotUsedError(ConnectionReleased):
    """The connection was already given back."""


class ConnectionUsedError(PoolError):
    """``close_connection()`` of a connection that is in use."""


class WaitConnectionTimeoutError(PoolTimeout):
    """No connection became free within ``wait_connection_timeout``."""


def pool_error(exc: BaseException) -> BaseException:
    """TorMySQL's exception for a tornpool pool error (others unchanged)."""
    if isinstance(exc, PoolTimeout) and not isinstance(exc, WaitConnectionTimeoutError):
        new: BaseException = WaitConnectionTimeoutError(0, "Wait connection timeout: %s" % (exc,))
    elif isinstance(exc, PoolClosed) and not isinstance(exc, ConnectionPoolClosedError):
        new = ConnectionPoolClosedError(0, "Connection pool closed.")
    else:
        return exc
    new.__cause__ = exc
    return new


class Connection(Client):
    """A connection lent by a :class:`ConnectionPool` (see the module docstring)."""

    def __init__(self, pool: ConnectionPool, lease: tornpool.PoolConnection) -> None:
        # Not Client.__init__: the pool opened the connection.
        self._pool = pool
        self._target = lease
        self._conn = lease.connection
        self._cursor_cls = pool.cursor_class
        self._autocommit = pool.autocommit
        self._last: Cursor | None = None
        self._last_result: Any = None
        self._insert_id = 0
        self._last_query_sql: str | None = None
        #: ``time.time()`` when taken from the pool.
        self.used_time = time.time()
        #: ``time.time()`` when last given back (when taken, until then).
        self.idle_time = self.used_time

    @property
    def pool(self) -> ConnectionPool:
        return self._pool

    @property
    def released(self) -> bool:
        """True once given back to the pool."""
        return bool(self._target.released)

    @property
    def native_connection(self) -> tornpool.Connection:
        """The pooled :class:`tornpool.Connection` (also after release)."""
        return self._conn

    def get_last_query_sql(self) -> bytes:
        """The last statement run through this connection (recorded with
        ``debug_connection_used=True``), as bytes."""
        return (self._last_query_sql or "").encode("utf-8")

    def record(self, sql: Any) -> None:
        """Remember ``sql`` as the last statement (``debug_connection_used``)."""
        if self._pool.debug_connection_used:
            self._last_query_sql = sql if isinstance(sql, str) else bytes(sql).decode("utf-8", "replace")

    def release(self) -> None:
        """Give the connection back (as ``close()``, synchronously).

        :raises ConnectionNotUsedError: it was given back already.
        """
        self._pool.release_connection(self)

    def give_back(self) -> None:
        """Called by the pool: release the lease."""
        self.idle_time = time.time()
        self._target.release()

    def close(self, remote_close: bool = False) -> asyncio.Future[None]:
        """Give the connection back to the pool, or with ``remote_close``
        close it (the pool opens a new one when needed); a Future resolving
        to None."""
        if remote_close:
            return self.do_close()
        return self._pool.release_connection(self)

    def do_close(self) -> asyncio.Future[None]:
        """Close the server connection and give the slot back; a Future."""
        self._pool.forget(self)
        return task(self._target.close())

    def discard(self) -> None:
        """Close the connection at once and give the slot back (synchronous;
        on the pool's loop only)."""
        self._pool.forget(self)
        self._target.terminate()
        self._target.release(quiet=True)

    async def reopen(self) -> Any:
        """For ``ping(reconnect=True)``: the dead lease goes back, a new one
        is taken from the pool."""
        self._target.release(quiet=True)
        lease = await self._pool.native.getconn()
        self._conn = lease.connection
        return lease

    def __enter__(self) -> Connection:  # type: ignore[override]
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.released:
            self.close()

    async def __aenter__(self) -> Connection:  # type: ignore[override]
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.released:
            return
        if self._autocommit:
            self.close()
            return
        if et is not None:
            # The block's exception is the one to see: a connection that
            # cannot even roll back is closed instead.
            try:
                if not self.closed:
                    await self.rollback()
            except MySQLError as exc:
                get_log().warning("tornpool.tormysql: ROLLBACK failed, closing the connection: %s", exc)
                self.discard()
        else:
            try:
                await self.commit()
            except BaseException:
                self.discard()
                raise
        if not self.released:
            self.close()

    def __del__(self) -> None:
        return None  # an unreleased lease is reclaimed (and reported) by tornpool


#: The pool connection class under a second name (inside ``ConnectionPool``,
#: ``Connection`` is TorMySQL's alias of ``get_connection``).
LentConnection = Connection


class ConnectionPool:
    """TorMySQL's connection pool; see the module docstring.

    :param max_connections: cap on server connections.
    :param idle_seconds: close connections idle longer than this (0: never).
    :param wait_connection_timeout: seconds a request may wait for a
        connection before :class:`WaitConnectionTimeoutError`; also, twice
        its square is how long a connection may be held before a leak
        warning (TorMySQL's rule).
    :param debug_connection_used: remember each connection's last statement
        (``conn.get_last_query_sql()``), shown when ``close()`` gives up on it.
    :raises ValueError: ``max_connections`` < 1.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._max_connections = int(kwargs.pop("max_connections", 32))
        self._idle_seconds = float(kwargs.pop("idle_seconds", 7200))
        self._wait_connection_timeout = float(kwargs.pop("wait_connection_timeout", 8))
        self.debug_connection_used = bool(kwargs.pop("debug_connection_used", False))
        dsn, connect_kwargs, self.cursor_class = connect_arguments(args, kwargs)
        self.autocommit = bool(connect_kwargs["autocommit"])
        wait = self._wait_connection_timeout
        self._pool = tornpool.Pool(
            dsn,
            # One connection is kept (TorMySQL kept none once idle_seconds
            # passed): with none to keep, a pool whose requests all fail fast
            # while the server is down would never try to reconnect.
            size=1,
            max_size=self._max_connections,
            timeout=wait,
            max_idle=self._idle_seconds or None,
            fail_fast=True,
            leak_threshold=2 * wait * wait if wait > 0 else None,
            name="tormysql-%x" % id(self),
            **connect_kwargs,
        )
        self._used: weakref.WeakSet[LentConnection] = weakref.WeakSet()
        self._closed = False

    @property
    def native(self) -> tornpool.Pool:
        """The :class:`tornpool.Pool` underneath (``stats()``, ``prometheus()``...)."""
        return self._pool

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- lending --------------------------------------------------------------------

    def get_connection(self) -> asyncio.Future[LentConnection]:
        """A Future resolving to a pool :class:`Connection`.

        :raises ConnectionPoolClosedError: the pool is closed (at once).
        :raises WaitConnectionTimeoutError: none within ``wait_connection_timeout``.
        :raises PoolUnavailable: no connection is alive and the server is
            unreachable (an ``OperationalError``).
        """
        if self._closed:
            raise ConnectionPoolClosedError(0, "Connection pool closed.")
        return task(self._get())

    Connection = get_connection
    connect = get_connection

    async def _get(self) -> LentConnection:
        try:
            lease = await self._pool.getconn()
        except PoolError as exc:
            new = pool_error(exc)
            if new is exc:
                raise
            raise new from exc
        conn = LentConnection(self, lease)
        self._used.add(conn)
        return conn

    def _check(self, connection: Any) -> LentConnection:
        if not isinstance(connection, LentConnection) or connection.pool is not self:
            raise ConnectionNotFoundError(0, "Connection not found.")
        return connection

    def release_connection(self, connection: LentConnection) -> asyncio.Future[None]:
        """Take a connection back (synchronously); returns a resolved Future.

        :raises ConnectionNotFoundError: not one of this pool's.
        :raises ConnectionNotUsedError: given back already.
        """
        conn = self._check(connection)
        if conn.released:
            raise ConnectionNotUsedError(0, "Connection is not used, you maybe close wrong connection.")
        self._used.discard(conn)
        conn.give_back()
        return done()

    def forget(self, connection: LentConnection) -> None:
        """A connection is being closed instead of given back."""
        self._used.discard(connection)

    def close_connection(self, connection: LentConnection) -> asyncio.Future[None]:
        """Close an idle connection (given back earlier) now.

        :raises ConnectionUsedError: it is in use (by its holder or, since
            it went back, by someone else).
        """
        conn = self._check(connection)
        native = conn.native_connection
        idle = conn.released and not native.closed and any(
            c["id"] == native.thread_id and c["state"] == "idle" for c in self._pool.connections())
        if not idle:
            raise ConnectionUsedError(0, "Connection is used, you can not close it.")
        native.terminate()
        return done()

    # -- closing ---------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> asyncio.Future[None] | concurrent.futures.Future[None]:
        """Close the pool: waiters fail with :class:`ConnectionPoolClosedError`,
        idle connections close now, the others when given back.

        :param timeout: seconds to wait for connections in use; then they
            are terminated and the Future fails with
            :class:`ConnectionPoolUsedError`.  None: wait for them -- except
            when called outside the pool's loop while that loop is idle
            (a test's ``tearDown``, a script's end): close then runs to the
            end before returning, nobody can give a connection back
            meanwhile, so the ones in use are terminated at once.
        :returns: a Future resolving to None once every connection is closed
            (outside any event loop, with nothing to close: a finished
            :class:`concurrent.futures.Future`).
        :raises ConnectionPoolClosedError: closed already (at once).
        """
        if self._closed:
            raise ConnectionPoolClosedError(0, "Connection pool closed.")
        self._closed = True
        if timeout is None and runs_to_the_end_now(self._pool.loop):
            timeout = 0.0
        fut = finish(lambda: self._close(timeout), self._pool.loop)
        if fut is not None:
            return fut
        finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        finished.set_result(None)
        return finished

    async def _close(self, timeout: float | None) -> None:
        await self._pool.close(timeout=_FOREVER if timeout is None else timeout)
        held = list(self._used)
        self._used.clear()
        if held:
            log = get_log()
            for conn in held:
                sql = conn.get_last_query_sql()
                log.error("tornpool.tormysql: close() terminated a connection still in use "
                          "after %.1f s%s", time.time() - conn.used_time,
                          (": " + sql.decode("utf-8", "replace")) if sql else "")
            raise ConnectionPoolUsedError(
                0, "Connection pool is used, you must wait all query is finish.")

    def __str__(self) -> str:
        stats = self._pool.stats()
        idle = stats["pool_available"]
        used = sum(1 for c in self._pool.connections() if c["state"] == "in use")
        return "%s <%s,%s>" % (object.__repr__(self), idle, used)

