"""Momoko's ``Pool`` on :class:`tornpool.Pool`.

Same signature and defaults as Momoko 2.2's; every method returns a Future
except ``putconn``, ``manage`` and ``close``, which are synchronous.  Under
it runs a :class:`tornpool.Pool` (:attr:`Pool.native`: stats, Prometheus,
``connections()``), so Momoko code gets tornpool's contract:

* FIFO hand-out; the cap (``max_size``) holds on the server; a request's
  statement is retried on another connection only when it provably never
  reached the server;
* every connection handed out is live (idle ones are pinged, dead ones
  replaced), its session is the pool's (``setsession`` included), and a
  transaction left open is rolled back when it comes back;
* nothing hangs: when no connection is alive and the server cannot be
  reached, requests fail at once with :class:`DatabaseNotAvailable`; dead
  connections are reopened in the background, no more than once per
  ``reconnect_interval`` (milliseconds, as in Momoko), and other waits end
  with :class:`~tornpool.errors.PoolTimeout` after ``timeout`` seconds.

Momoko quirks not kept: the pool does not open one extra connection beyond
what the load needs; ``shrink_period`` is not a separate timer (idle
connections are checked about every ``min(1 s, shrink_delay / 2)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Iterator, Sequence
from typing import Any

import tornpool
from tornpool.errors import (
    CR_SERVER_GONE_ERROR,
    ConnectionLost,
    ConnectionReleased,
    ForeignConnection,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    PoolClosed,
)
from tornpool.momoko.connection import HSTORE_MESSAGE, Connection
from tornpool.momoko.cursors import JSONSetting, cursor_class, default_cursor_class, version_number
from tornpool.momoko.dsn import parse
from tornpool.momoko.exceptions import DatabaseNotAvailable, PartiallyConnectedError
from tornpool.momoko.futures import app_loop, failed, finish, relay, spawn

__all__ = ["Pool"]

#: Backoff jitter is +-25 %: a base of interval / 0.75 keeps attempts at
#: least ``reconnect_interval`` apart.
_JITTER_FLOOR = 0.75


class Pool:
    """A Momoko connection pool for MySQL/MariaDB; see the module docstring.

    :param dsn: libpq ``key=value`` string or ``mysql://`` URL.
    :param connection_factory: ``RealDictConnection``, ``DictConnection`` or
        ``NamedTupleConnection``.
    :param cursor_factory: default cursor class (:mod:`tornpool.momoko.cursors`).
    :param size: connections :meth:`connect` opens and the pool keeps (>= 1).
    :param max_size: stretch limit under load (default ``size``).
    :param ioloop: accepted and ignored.
    :param raise_connect_errors: :meth:`connect` raises
        :class:`PartiallyConnectedError` if any connection failed.
    :param reconnect_interval: milliseconds between reconnect attempts while
        the server is down.
    :param setsession: statements run on every new connection; a connection
        whose setsession fails is not used.
    :param auto_shrink: close idle connections above ``size`` that were not
        used for ``shrink_delay``.
    :param timeout: (tornpool's) seconds a request may wait for a connection
        before :class:`~tornpool.errors.PoolTimeout`.
    :raises ValueError: bad sizes or interval.
    :raises DSNError: a malformed DSN.
    :raises InterfaceError: an unsupported factory.
    """

    DatabaseNotAvailable = DatabaseNotAvailable

    def __init__(
        self,
        dsn: str,
        connection_factory: Any = None,
        cursor_factory: Any = None,
        size: int = 1,
        max_size: int | None = None,
        ioloop: Any = None,
        raise_connect_errors: bool = True,
        reconnect_interval: float = 500,
        setsession: Sequence[Any] = (),
        auto_shrink: bool = False,
        shrink_delay: datetime.timedelta = datetime.timedelta(minutes=2),
        shrink_period: datetime.timedelta = datetime.timedelta(minutes=2),
        *,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError("the connection pool size must be an integer above 0")
        max_size = max_size or size
        if max_size < size:
            raise ValueError("the connection pool max_size must be at least size")
        if reconnect_interval < 0:
            raise ValueError("reconnect_interval is milliseconds >= 0")
        self.dsn = dsn
        self.connection_factory = connection_factory
        self.cursor_factory = cursor_factory
        self.size = size
        self.max_size = max_size
        self.ioloop = ioloop
        self.raise_connect_errors = raise_connect_errors
        #: Seconds between reconnect attempts (the argument is milliseconds).
        self.reconnect_interval = float(reconnect_interval) / 1000
        self.setsession = tuple(setsession)
        self.auto_shrink = auto_shrink
        self.shrink_delay = shrink_delay
        self.shrink_period = shrink_period
        self._default = default_cursor_class(connection_factory, cursor_factory)
        self._json = JSONSetting()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        #: The server's version as an int (``101106`` for 10.11.6), once known.
        self.server_version: int | None = None
        #: The server's version string, once known.
        self.server_version_string: str | None = None
        base = max(self.reconnect_interval, 0.01) / _JITTER_FLOOR
        self._pool = tornpool.Pool(
            size=size,
            max_size=max_size,
            timeout=timeout,
            max_idle=shrink_delay.total_seconds() if auto_shrink else None,
            reconnect_interval=base,
            reconnect_max_interval=base,
            fail_fast=True,
            setsession=self.setsession,
            name="momoko-%x" % id(self),
            **parse(dsn),
        )

    # -- state --------------------------------------------------------------------------

    @property
    def native(self) -> tornpool.Pool:
        """The :class:`tornpool.Pool` underneath (``stats()``,
        ``prometheus()``, ``connections()``...)."""
        return self._pool

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _note_version(self, version: str) -> None:
        self.server_version_string = version
        self.server_version = version_number(version)

    # -- connecting ----------------------------------------------------------------------

    def connect(self) -> asyncio.Future[Pool]:
        """Open ``size`` connections at once.  Requests may be issued before
        it resolves; they are served as connections open.

        :returns: a Future resolving to this pool.
        :raises PartiallyConnectedError: some connection failed and
            ``raise_connect_errors`` is true (the first error is chained).
        :raises PoolClosed: the pool is closed.
        """
        return spawn(self._connect())

    async def _connect(self) -> Pool:
        if self._closed:
            raise PoolClosed(0, "connection pool is closed")
        native = self._pool
        errors = await native.engine.fill(announce=False)
        # Requests issued before this ran may have started connects of their own.
        while native.stats()["pool_size"] > len(native.connections()):
            await asyncio.sleep(0.01)
        stats = native.stats()
        if stats["pool_available"] and not stats["requests_waiting"]:
            lease = await native.getconn()
            try:
                self._note_version(lease.server_version)
            finally:
                lease.release()
        failed = self.size - len(native.connections())
        if failed > 0 and self.raise_connect_errors:
            cause = errors[0] if errors else native.last_connect_error
            raise PartiallyConnectedError(
                0, "%d connection(s) failed to connect" % failed) from cause
        return self

    # -- connections for the caller ------------------------------------------------------

    def getconn(self, ping: bool = True) -> asyncio.Future[Connection]:
        """Take a connection for several statements; give it back with
        :meth:`putconn` (or ``with pool.manage(conn):``).

        :param ping: check the connection with a round trip first; a dead
            one is replaced once.
        :returns: a Future resolving to a :class:`Connection`.
        :raises DatabaseNotAvailable: no connection is alive and the server
            is unreachable.
        :raises PoolTimeout: none became free within ``timeout``.
        :raises PoolClosed: the pool is closed.
        """
        return spawn(self._getconn(ping))

    async def _getconn(self, ping: bool) -> Connection:
        lease = await (self._pinged() if ping else self._pool.getconn())
        conn = Connection.on_lease(lease, self, self._default, self._json)
        self.server_version, self.server_version_string = conn.server_version, conn.server_version_string
        return conn

    async def _pinged(self) -> tornpool.PoolConnection:
        """A lease whose connection answered a ping; a dead one is replaced once."""
        for attempt in (0, 1):
            lease = await self._pool.getconn()
            try:
                await lease.ping()
                return lease
            except OperationalError as exc:
                lease.release(quiet=True)
                if attempt:
                    raise DatabaseNotAvailable(0, "No database connection available") from exc
            except BaseException:
                lease.release(quiet=True)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _lease_of(self, connection: Any) -> tornpool.PoolConnection:
        if not isinstance(connection, Connection) or connection.pool is not self:
            raise ForeignConnection(0, "this connection was not taken from this pool")
        lease = connection.lease
        assert lease is not None
        return lease

    def putconn(self, connection: Connection) -> None:
        """Give a connection back (synchronous).  A closed one is replaced.

        :raises ForeignConnection: it did not come from this pool.
        :raises ConnectionReleased: it was given back already.
        """
        self._pool.putconn(self._lease_of(connection))

    @contextlib.contextmanager
    def manage(self, connection: Connection) -> Iterator[Connection]:
        """``with pool.manage(conn):`` -- :meth:`putconn` on exit.

        :raises ForeignConnection: it did not come from this pool.
        :raises ConnectionReleased: it was given back already.
        """
        lease = self._lease_of(connection)
        if lease.released:
            raise ConnectionReleased(0, "this connection was already given back")
        try:
            yield connection
        finally:
            if not lease.released:
                self._pool.putconn(lease)

    # -- statements on some connection ---------------------------------------------------

    def execute(self, operation: str | bytes, parameters: Any = (),
                cursor_factory: Any = None) -> asyncio.Future[Any]:
        """Run one statement on some pooled connection; without
        ``parameters`` nothing is interpolated.  Retried once, on another
        connection, only if it provably never reached the server.

        :returns: a Future resolving to a buffered cursor.
        :raises DatabaseNotAvailable: no connection is alive and the server
            is unreachable.
        :raises PoolTimeout, PoolClosed: see :meth:`getconn`.
        :raises InterfaceError: a streaming cursor class (use :meth:`getconn`).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return spawn(self._execute_later(operation, parameters, cursor_factory))
        try:
            cls = self._buffered(cursor_factory)
        except Exception as exc:
            return failed(exc)
        loads = self._json.loads
        native = self._pool.execute(operation, parameters or None, cursor=cls.native)
        return relay(native, lambda result: cls(result, loads), loop)

    async def _execute_later(self, operation: Any, parameters: Any, cursor_factory: Any) -> Any:
        return await self.execute(operation, parameters, cursor_factory)

    def _buffered(self, cursor_factory: Any) -> type[Any]:
        cls = cursor_class(cursor_factory) or self._default
        if cls.streaming:
            raise InterfaceError(
                0, "Pool.execute() returns buffered cursors; stream on a connection from "
                   "getconn(): conn.execute(sql, cursor_factory=SSCursor)")
        return cls

    def callproc(self, procname: str, parameters: Sequence[Any] = (),
                 cursor_factory: Any = None) -> asyncio.Future[Any]:
        """Call a stored procedure on some pooled connection (see
        :meth:`Connection.callproc`).

        :returns: a Future resolving to a cursor on its first result set.
        """
        return spawn(self._callproc(procname, parameters, cursor_factory))

    async def _callproc(self, procname: str, parameters: Sequence[Any], cursor_factory: Any) -> Any:
        lease = await self._pool.getconn()
        try:
            return await Connection.on_lease(lease, self, self._default, self._json).callproc(
                procname, parameters, cursor_factory)
        finally:
            lease.release()

    def transaction(self, statements: Sequence[Any], cursor_factory: Any = None,
                    auto_rollback: bool = True) -> asyncio.Future[list[Any]]:
        """BEGIN; each statement (a str or ``(sql, parameters)``); COMMIT --
        on one pooled connection.  If BEGIN finds the connection dead before
        anything was sent, the transaction starts over on another one.

        :returns: a Future resolving to one cursor per statement.
        :raises: the failing statement's error (after ROLLBACK, if
            ``auto_rollback``).
        """
        return spawn(self._transaction(statements, cursor_factory, auto_rollback))

    async def _transaction(self, statements: Sequence[Any], cursor_factory: Any,
                           auto_rollback: bool) -> list[Any]:
        for attempt in (0, 1):
            lease = await self._pool.getconn()
            try:
                try:
                    await lease.begin()
                except ConnectionLost as exc:
                    if attempt == 0 and exc.args and exc.args[0] == CR_SERVER_GONE_ERROR:
                        continue  # never sent: start over on another connection
                    raise
                conn = Connection.on_lease(lease, self, self._default, self._json)
                return await conn.run_transaction(statements, cursor_factory, auto_rollback,
                                                  begin=False)
            finally:
                lease.release(quiet=True)
        raise AssertionError("unreachable")  # pragma: no cover

    def mogrify(self, operation: str, parameters: Any = ()) -> asyncio.Future[bytes]:
        """The statement :meth:`execute` would send, as bytes.  Asynchronous,
        as in Momoko: it waits for a connection (whose character set and SQL
        mode decide the escaping).

        :raises ProgrammingError: a malformed placeholder, or placeholders
            and parameters that do not match in number.
        """
        return spawn(self._mogrify(operation, parameters))

    async def _mogrify(self, operation: str, parameters: Any) -> bytes:
        lease = await self._pool.getconn()
        try:
            return Connection.on_lease(lease, self, self._default, self._json).mogrify(
                operation, parameters)
        finally:
            lease.release()

    def ping(self) -> asyncio.Future[Any]:
        """``SELECT 1 AS ping`` on some pooled connection; a Future resolving
        to its cursor."""
        return self.execute("SELECT 1 AS ping")

    def register_json(self, globally: bool = True, loads: Any = None) -> asyncio.Future[None]:
        """Decode JSON columns on every connection of the pool (see
        :meth:`Connection.register_json`: MySQL's JSON type is decoded,
        MariaDB's JSON arrives as text).

        :returns: a Future resolving to None.
        """
        return self._json.register(loads, app_loop())

    def register_hstore(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        """hstore does not exist in MySQL.

        :returns: a Future failing with :class:`~tornpool.errors.NotSupportedError`.
        """
        return failed(NotSupportedError(0, HSTORE_MESSAGE))

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool (synchronous): waiting requests fail with
        :class:`~tornpool.errors.PoolClosed`, idle connections close at once,
        connections in use close when given back or after one second.
        :meth:`wait_closed` waits for the sockets to be released.

        :raises PoolError: the pool is already closed (``PoolClosed``).
        """
        if self._closed:
            raise PoolClosed(0, "connection pool is already closed")
        self._closed = True
        self._closing = finish(lambda: self._pool.close(timeout=1.0), self._pool.loop)

    async def wait_closed(self) -> None:
        """After :meth:`close`: resolves once every connection is closed."""
        if self._closing is not None:
            await self._closing

    def __repr__(self) -> str:
        s = self._pool.stats()
        return "<tornpool.momoko.Pool size=%d/%d open=%d idle=%d%s>" % (
            self.size, self.max_size, s["pool_size"], s["pool_available"],
            " closed" if self._closed else "")

