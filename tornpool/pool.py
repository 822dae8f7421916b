"""The connection pool: :class:`Pool`.

``Pool`` is the driver-independent policy core (:mod:`tornpool._policy`)
fed with :func:`tornpool.connect` plus Momoko's conveniences (``execute``,
``transaction``, ``getconn``/``putconn``/``manage``...).  See ``docs/pool.md``.

Every awaitable here is a coroutine or an object with ``__await__``, so it
works with ``await`` and with ``yield`` inside ``@gen.coroutine``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
    overload,
)

from ._policy import Lease, PoolPolicy, PoolUnavailable, render_prometheus
from .errors import (
    CommandTimeout,
    ConnectionClosed,
    ConnectionReleased,
    DSNError,
    ForeignConnection,
    MySQLError,
    OperationalError,
    PoolClosed,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._pool_sync import SyncPool
    from .connection import Connection
    from .cursors import Cursor
    from .cursors import _BaseCursor

__all__ = ["Pool", "PoolConnection", "PoolUnavailable"]

_monotonic = time.monotonic

#: Connect errors that retrying cannot fix: fail the waiters at once.
PERMANENT_CONNECT_ERRORS = frozenset((1044, 1045, 1049, 1251, 1698, 2059))

Statement = Union[str, Tuple[str, Any]]


def _errno(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def _is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, (DSNError, TypeError, ValueError)):
        return True
    return isinstance(exc, MySQLError) and _errno(exc) in PERMANENT_CONNECT_ERRORS


def _never_sent(exc: BaseException) -> bool:
    """True when the statement provably never reached the server: the
    connection was found closed before anything was sent (ConnectionClosed,
    or 2006 "server has gone away", which PyMySQL raises only when writing
    the command failed -- the server cannot run an incomplete packet)."""
    return isinstance(exc, ConnectionClosed) or (
        isinstance(exc, OperationalError) and _errno(exc) == 2006)


class PoolConnection(Lease["Connection"]):
    """What the pool hands out: a lightweight proxy for one acquisition.

    It forwards to the pooled :class:`~tornpool.connection.Connection`
    until released; afterwards every method raises
    :class:`~tornpool.errors.ConnectionReleased`.  Use :attr:`raw` to reach
    the connection itself (only while the lease is held).
    """

    __slots__ = ()

    def _failed(self, exc: BaseException) -> None:
        # Fatal errors need nothing here: the connection closes itself on them
        # (Connection._run) and the pool drops closed connections on release.
        if isinstance(exc, (asyncio.CancelledError, CommandTimeout)):
            # the server may still be running the statement
            self.mark_abandoned()

    async def execute(self, sql: str, args: Any = None, *, timeout: Optional[float] = None,
                      cursor: Any = None) -> "Cursor":
        """Run one statement; resolves to a buffered cursor.

        :raises ConnectionReleased: the lease was given back.
        """
        conn = self.raw
        try:
            return await conn.execute(sql, args, timeout=timeout, cursor=cursor)
        except BaseException as exc:
            self._failed(exc)
            raise

    async def executemany(self, sql: str, seq_of_args: Iterable[Any], *,
                          timeout: Optional[float] = None) -> "_BaseCursor":
        """Run ``sql`` for each parameter set; resolves to a cursor."""
        conn = self.raw
        try:
            return await conn.executemany(sql, seq_of_args, timeout=timeout)
        except BaseException as exc:
            self._failed(exc)
            raise

    async def callproc(self, procname: str, args: Sequence[Any] = (), *,
                       timeout: Optional[float] = None) -> "_BaseCursor":
        """Call a stored procedure; resolves to a cursor."""
        conn = self.raw
        try:
            return await conn.callproc(procname, args, timeout=timeout)
        except BaseException as exc:
            self._failed(exc)
            raise

    async def ping(self, *, timeout: Optional[float] = None) -> None:
        """COM_PING; resolves to None."""
        conn = self.raw
        try:
            await conn.ping(timeout=timeout)
        except BaseException as exc:
            self._failed(exc)
            raise

    async def begin(self, *, timeout: Optional[float] = None) -> None:
        """Start a transaction."""
        conn = self.raw
        try:
            await conn.begin(timeout=timeout)
        except BaseException as exc:
            self._failed(exc)
            raise

    async def commit(self, *, timeout: Optional[float] = None) -> None:
        """Commit the current transaction."""
        conn = self.raw
        try:
            await conn.commit(timeout=timeout)
        except BaseException as exc:
            self._failed(exc)
            raise

    async def rollback(self, *, timeout: Optional[float] = None) -> None:
        """Roll back the current transaction."""
        conn = self.raw
        try:
            await conn.rollback(timeout=timeout)
        except BaseException as exc:
            self._failed(exc)
            raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> Any:
        """``async with lease.transaction():`` BEGIN, COMMIT on success,
        ROLLBACK on error."""
        await self.begin()
        try:
            yield self
        except BaseException:
            slot = self._slot
            if slot is not None and not slot.conn.closed and not slot.conn.busy:
                await self.rollback()
            raise
        await self.commit()

    async def close(self) -> None:
        """Close the underlying connection and give the lease back (the
        pool replaces the connection)."""
        slot = self._slot
        if slot is None:
            return
        try:
            await slot.conn.close()
        finally:
            self.release()

    @property
    def closed(self) -> bool:
        """True once released or once the connection is closed."""
        slot = self._slot
        return slot is None or slot.conn.closed

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    @property
    def busy(self) -> bool:
        return self.raw.busy

    @property
    def thread_id(self) -> int:
        return self.raw.thread_id

    @property
    def server_version(self) -> str:
        return self.raw.server_version

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.raw, name)

    def __repr__(self) -> str:
        slot = self._slot
        if slot is None:
            return "<PoolConnection released>"
        return "<PoolConnection %r>" % (slot.conn,)


class _Acquire:
    """Result of :meth:`Pool.acquire`: await it, or ``async with`` it."""

    __slots__ = ("_pool", "_timeout", "_lease")

    def __init__(self, pool: "Pool", timeout: Optional[float]) -> None:
        self._pool = pool
        self._timeout = timeout
        self._lease: Optional[PoolConnection] = None

    def __await__(self) -> Generator[Any, None, PoolConnection]:
        return self._pool.getconn(self._timeout).__await__()

    async def __aenter__(self) -> PoolConnection:
        self._lease = await self._pool.getconn(self._timeout)
        return self._lease

    async def __aexit__(self, et: Optional[Type[BaseException]], e: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        lease = self._lease
        self._lease = None
        if lease is not None:
            lease.release()


class _Transaction:
    """``async with pool.transaction() as conn``: acquire, BEGIN, COMMIT on
    success, ROLLBACK on error, release."""

    __slots__ = ("_pool", "_timeout", "_lease")

    def __init__(self, pool: "Pool", timeout: Optional[float]) -> None:
        self._pool = pool
        self._timeout = timeout
        self._lease: Optional[PoolConnection] = None

    async def __aenter__(self) -> PoolConnection:
        lease = await self._pool.getconn(self._timeout)
        try:
            await lease.begin()
        except BaseException:
            lease.release()
            raise
        self._lease = lease
        return lease

    async def __aexit__(self, et: Optional[Type[BaseException]], e: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        lease = self._lease
        self._lease = None
        if lease is None:
            return
        try:
            if et is None:
                await lease.commit()
            elif not lease.closed and not lease.raw.busy:
                await lease.rollback()
        finally:
            # an open transaction left over (commit failed, rollback
            # cancelled) is rolled back by the pool on release
            lease.release()


class Pool:
    """A pool of tornpool connections with Momoko-style conveniences.

    Constructing it touches no event loop; it binds to the loop on which it
    is first used.  Sizes: ``size`` connections are opened by
    :meth:`connect` and kept; up to ``max_size`` (default ``size``) exist
    under load.  All durations are seconds.

    :param dsn: ``mysql://user:pw@host:port/db?charset=...`` (or None and
        keyword arguments as for :func:`tornpool.connect`).
    :param timeout: default deadline of one acquire (waiting, validating and
        connecting together).
    :param max_waiting: refuse requests beyond this many waiters with
        :class:`~tornpool.errors.PoolTooManyWaiters` (0: unlimited).
    :param max_lifetime: close connections older than this (minus up to 10 %
        jitter so they do not all expire together); None: never.
    :param max_idle: close idle connections above ``size`` after this long.
    :param max_uses: close a connection after this many acquisitions (0: no limit).
    :param reconnect_interval: first backoff delay while the server is down
        (doubles up to ``reconnect_max_interval``, with jitter).
    :param reconnect_timeout: after this long without a successful connect
        ``reconnect_failed(pool)`` is called once (the pool keeps trying).
    :param fail_fast: when the server is unreachable and no connection is
        left, fail waiters at once with :class:`PoolUnavailable` (Momoko's
        behaviour) instead of at their deadline.
    :param setsession: statements run on each new connection, in one
        transaction; a connection whose set-up fails is not used.
    :param configure: ``async (conn) -> None`` run on each new connection.
    :param reset: ``async (conn) -> None`` run on each returned connection.
    :param leak_threshold: log a warning (with the acquiring stack) for
        connections held longer than this; None: off.
    :param check_idle: connections idle longer than this are pinged before
        being handed out.
    """

    def __init__(
        self,
        dsn: Optional[str] = None,
        *,
        size: int = 1,
        max_size: Optional[int] = None,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: Optional[float] = 3600.0,
        max_idle: Optional[float] = 600.0,
        max_uses: int = 0,
        reconnect_interval: float = 0.1,
        reconnect_max_interval: float = 0.8,
        reconnect_timeout: float = 300.0,
        reconnect_failed: Optional[Callable[["Pool"], None]] = None,
        fail_fast: bool = False,
        setsession: Sequence[Statement] = (),
        configure: Optional[Callable[["Connection"], Awaitable[None]]] = None,
        reset: Optional[Callable[["Connection"], Awaitable[None]]] = None,
        leak_threshold: Optional[float] = None,
        check_idle: float = 0.5,
        name: Optional[str] = None,
        **connect_kwargs: Any,
    ) -> None:
        self.dsn = dsn
        self.setsession = tuple(setsession)
        self._configure = configure
        connect_kwargs.setdefault("autocommit", True)
        self._connect_kwargs = connect_kwargs
        self._policy: PoolPolicy["Connection"] = PoolPolicy(
            self._open,
            min_size=size,
            max_size=max_size,
            timeout=timeout,
            max_waiting=max_waiting,
            max_lifetime=max_lifetime,
            max_idle=max_idle,
            max_uses=max_uses,
            check_idle=check_idle,
            reconnect_interval=reconnect_interval,
            reconnect_max_interval=reconnect_max_interval,
            reconnect_timeout=reconnect_timeout,
            reconnect_failed=reconnect_failed,
            fail_fast=fail_fast,
            leak_threshold=leak_threshold,
            reset=reset,
            reap=_reap,
            permanent_error=_is_permanent,
            lease_factory=PoolConnection,
            owner=self,
            name=name,
        )
        self._sync: Optional["SyncPool"] = None

    # -- properties -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._policy.name

    @property
    def size(self) -> int:
        """Connections kept open (``pool_min``)."""
        return self._policy.min_size

    @property
    def max_size(self) -> int:
        """Cap on server connections (``pool_max``)."""
        return self._policy.max_size

    @property
    def timeout(self) -> float:
        return self._policy.timeout

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._policy.closed

    @property
    def policy(self) -> PoolPolicy["Connection"]:
        """The driver-independent policy core (for introspection)."""
        return self._policy

    @property
    def last_connect_error(self) -> Optional[BaseException]:
        """The last connect error while the server is unreachable, else None."""
        return self._policy.last_connect_error

    # -- connecting ---------------------------------------------------------------------

    async def _open(self) -> "Connection":
        from .connection import connect

        conn = await connect(self.dsn, **self._connect_kwargs)
        try:
            if self.setsession:
                await conn.begin()
                for stmt in self.setsession:
                    if isinstance(stmt, str):
                        await conn.execute(stmt)
                    else:
                        await conn.execute(stmt[0], stmt[1])
                await conn.commit()
            if self._configure is not None:
                await self._configure(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def connect(self) -> "Pool":
        """Open ``size`` connections at once (Momoko semantics).

        Requests may be issued before it resolves.  Resolves to the pool.

        :raises OperationalError: a connection could not be opened (bad
            credentials, unreachable server...); the pool is then closed.
        :raises DSNError: the DSN cannot be understood.
        :raises PoolClosed: the pool is closed.
        """
        policy = self._policy
        if policy.closed:
            raise PoolClosed("%s is closed" % self.name)
        errors = await policy.fill()
        if errors:
            await self._close_quietly()
            raise errors[0]
        return self

    async def _close_quietly(self) -> None:
        if not self._policy.closed:
            await self._policy.close(timeout=1.0)

    async def __aenter__(self) -> "Pool":
        return await self.connect()

    async def __aexit__(self, et: Optional[Type[BaseException]], e: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self._close_quietly()

    # -- acquiring ------------------------------------------------------------------------

    async def getconn(self, timeout: Optional[float] = None) -> PoolConnection:
        """Take a connection; give it back with :meth:`putconn`.

        :param timeout: deadline for the whole acquire; default: the pool's.
        :returns: a :class:`PoolConnection` lease.
        :raises PoolTimeout: none available before the deadline.
        :raises PoolClosed: the pool is closed or closes while waiting.
        :raises PoolTooManyWaiters: ``max_waiting`` requests already wait.
        :raises PoolUnavailable: ``fail_fast`` and the server is down.
        """
        lease = await self._policy.acquire(timeout)
        return lease  # type: ignore[return-value]

    def acquire(self, timeout: Optional[float] = None) -> _Acquire:
        """``async with pool.acquire() as conn`` (or ``conn = await
        pool.acquire()``, then :meth:`putconn`)."""
        return _Acquire(self, timeout)

    def putconn(self, conn: Any) -> None:
        """Give a connection back (synchronous).

        :raises ForeignConnection: ``conn`` did not come from this pool.
        :raises ConnectionReleased: ``conn`` was already given back.
        """
        if not isinstance(conn, Lease):
            slot = self._policy._slots.get(id(conn))
            if slot is None or slot.conn is not conn or slot.lease is None:
                raise ForeignConnection("this connection was not handed out by %s" % self.name)
            conn = slot.lease
        self._policy.release(conn)

    @contextlib.contextmanager
    def manage(self, conn: PoolConnection) -> Iterator[PoolConnection]:
        """``with pool.manage(conn):`` -- :meth:`putconn` on exit."""
        try:
            yield conn
        finally:
            if not getattr(conn, "released", False):
                self.putconn(conn)

    # -- Momoko conveniences -------------------------------------------------------------

    async def _run(self, method: str, timeout: Optional[float], *args: Any,
                   **kwargs: Any) -> Any:
        deadline = None if timeout is None else _monotonic() + timeout
        retried = False
        while True:
            lease = await self._policy.acquire(timeout)
            try:
                if deadline is not None:
                    kwargs["timeout"] = max(deadline - _monotonic(), 0.001)
                return await getattr(lease, method)(*args, **kwargs)
            except (ConnectionClosed, OperationalError) as exc:
                if retried or not _never_sent(exc):
                    raise
                retried = True
                if deadline is not None:
                    timeout = max(deadline - _monotonic(), 0.0)
            finally:
                lease.release()

    async def execute(self, sql: str, args: Any = None, *, timeout: Optional[float] = None,
                      cursor: Any = None) -> "Cursor":
        """Run one statement on some pooled connection.

        :param timeout: one deadline for acquire and statement.
        :returns: a buffered cursor.
        :raises PoolTimeout, PoolClosed: see :meth:`getconn`.
        :raises CommandTimeout: the statement ran out of time.
        """
        if cursor is None:
            result: Cursor = await self._run("execute", timeout, sql, args)
        else:
            result = await self._run("execute", timeout, sql, args, cursor=cursor)
        return result

    async def executemany(self, sql: str, seq_of_args: Iterable[Any], *,
                          timeout: Optional[float] = None) -> "_BaseCursor":
        """Run ``sql`` once per parameter set; resolves to a cursor."""
        result: _BaseCursor = await self._run("executemany", timeout, sql, seq_of_args)
        return result

    async def callproc(self, procname: str, args: Sequence[Any] = (), *,
                       timeout: Optional[float] = None) -> "_BaseCursor":
        """Call a stored procedure; resolves to a cursor (OUT parameters are
        read with ``SELECT @_procname_0`` as in PyMySQL)."""
        result: _BaseCursor = await self._run("callproc", timeout, procname, args)
        return result

    async def ping(self, *, timeout: Optional[float] = None) -> None:
        """COM_PING on a pooled connection; resolves to None."""
        await self._run("ping", timeout)

    @overload
    def transaction(self, statements: None = None, *,
                    timeout: Optional[float] = None) -> _Transaction: ...

    @overload
    def transaction(self, statements: Sequence[Statement], *,
                    timeout: Optional[float] = None) -> Awaitable[List["Cursor"]]: ...

    def transaction(self, statements: Optional[Sequence[Statement]] = None, *,
                    timeout: Optional[float] = None
                    ) -> Union[_Transaction, Awaitable[List["Cursor"]]]:
        """Two forms.

        ``await pool.transaction([sql, (sql, params), ...])`` (Momoko): BEGIN,
        each statement, COMMIT; ROLLBACK and re-raise on error.  Resolves
        to the list of cursors, one per statement.

        ``async with pool.transaction() as conn:`` BEGIN on enter, COMMIT on
        success, ROLLBACK on error.
        """
        if statements is None:
            return _Transaction(self, timeout)
        return self._transaction(list(statements), timeout)

    async def _transaction(self, statements: List[Statement],
                           timeout: Optional[float]) -> List["Cursor"]:
        cursors: List[Cursor] = []
        async with _Transaction(self, timeout) as conn:
            for stmt in statements:
                if isinstance(stmt, str):
                    cursors.append(await conn.execute(stmt))
                else:
                    cursors.append(await conn.execute(stmt[0], stmt[1]))
        return cursors

    # -- management ---------------------------------------------------------------------

    def stats(self, reset: bool = False) -> Dict[str, int]:
        """Counters and gauges with psycopg_pool's names (``pool_min``,
        ``pool_max``, ``pool_size``, ``pool_available``, ``requests_waiting``,
        ``requests_num``, ``requests_queued``, ``requests_wait_ms``,
        ``requests_errors``, ``usage_ms``, ``returns_bad``,
        ``connections_num``, ``connections_ms``, ``connections_errors``,
        ``connections_lost``).

        :param reset: zero the counters after reading.
        """
        return self._policy.stats(reset)

    def prometheus(self, prefix: str = "tornpool") -> str:
        """:meth:`stats` in the Prometheus text exposition format, labelled
        ``pool="<name>"``."""
        return render_prometheus(self._policy.stats(), self.name, prefix)

    def resize(self, size: int, max_size: Optional[int] = None) -> None:
        """Change ``size`` and ``max_size``; the pool grows or shrinks in
        the background (leased connections above the new cap close on
        return)."""
        self._policy.resize(size, max_size)

    async def drain(self) -> None:
        """Replace every connection gracefully: idle ones at once, leased
        ones when given back.  Resolves once ``size`` new connections are
        open."""
        self._policy.drain()
        await self._policy.wait_filled()

    async def close(self, timeout: float = 5.0) -> None:
        """Close gracefully: waiters get :class:`PoolClosed`, idle
        connections are closed, leased ones are closed when given back or
        terminated after ``timeout`` seconds.  Stops a background loop
        started by :meth:`sync`.

        :raises PoolClosed: the pool was already closed.
        """
        await self._policy.close(timeout)

    # -- blocking face ------------------------------------------------------------------

    def sync(self) -> "SyncPool":
        """The blocking face of this pool, for worker threads; see
        :class:`tornpool._pool_sync.SyncPool`."""
        if self._sync is None:
            from ._pool_sync import SyncPool

            self._sync = SyncPool(self)
        return self._sync

    def __repr__(self) -> str:
        s = self._policy.stats()
        return "<Pool %s size=%d/%d available=%d%s>" % (
            self.name, s["pool_size"], s["pool_max"], s["pool_available"],
            " closed" if self.closed else "")


async def _reap(dead: "Connection", live: "Connection") -> None:
    """Make the server drop a connection abandoned mid-statement: KILL it,
    then wait (up to 2 s) until its thread has left the processlist -- KILL
    only flags the thread, which exits a little later."""
    try:
        tid = int(dead.thread_id)
    except (TypeError, ValueError, AttributeError):
        return
    try:
        await live.execute("KILL %d" % tid, timeout=5.0)
    except MySQLError:
        return  # 1094 unknown thread: already gone (or no privilege)
    deadline = _monotonic() + 2.0
    while _monotonic() < deadline:
        cur = await live.execute(
            "SELECT 1 FROM information_schema.processlist WHERE id = %s", (tid,), timeout=2.0)
        if not cur.fetchall():
            return
        await asyncio.sleep(0.005)
