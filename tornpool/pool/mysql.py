"""The connection pool: :class:`Pool`.

``Pool`` is the driver-independent :class:`~tornpool.pool.engine.PoolEngine`
fed with :func:`tornpool.connect`, plus what makes a MySQL pool safe to share
(every lease starts in the session the pool configured: see
:mod:`tornpool.session`) and Momoko's conveniences (``execute``,
``transaction``, ``getconn``/``putconn``/``manage``...).  See ``docs/pool.md``.

Every awaitable here is a Future, a coroutine or an object with
``__await__``, so it works with ``await`` and with ``yield`` inside
``@gen.coroutine``.

:meth:`Pool.execute` is the hot path: no lease object, no coroutine of ours.
The request is a :class:`~tornpool.commands.Statement` that is also the
engine's waiter: when a connection is (or becomes) free it is written right
away, and when its reply is parsed the connection goes straight to the next
waiter and the caller's Future resolves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from pymysql.constants import CR

from tornpool.commands import CommandFuture, Statement
from tornpool.connection import Connection, connect
from tornpool.cursors import DETACHED, Cursor, cursor_class_for
from tornpool.errors import (
    ConnectionLost,
    DSNError,
    ForeignConnection,
    MySQLError,
    PoolClosed,
)
from tornpool.hosts import HostList, Hosts, HostSpec
from tornpool.pool.connection import PoolConnection
from tornpool.pool.engine import RETIRE, PoolEngine
from tornpool.pool.facade import PoolFacade
from tornpool.pool.failover import FailoverConnection, note_error, reap_on_same_server
from tornpool.pool.lease import Slot, where_acquired
from tornpool.pool.scopes import AcquireScope, TransactionScope

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.pool.sync import SyncPool

__all__ = ["Pool", "PERMANENT_CONNECT_ERRORS"]

log = logging.getLogger("tornpool.pool")
_monotonic = time.monotonic

#: Connect errors that retrying cannot fix: fail the waiters at once.
PERMANENT_CONNECT_ERRORS = frozenset((1044, 1045, 1049, 1251, 1698, 2059))
#: ``reconnect_max_interval`` of a pool over a host list: a promoted server is
#: found within about this long (+25 %) of its promotion.
HOST_LIST_RECONNECT_MAX = 0.25
ER_OPTION_PREVENTS_STATEMENT = 1290  # read-only server (among others)

Statement_ = str | tuple[str, Any]
SessionReset = Literal["auto", "always", "never"]


def _errno(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def _is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, (DSNError, TypeError, ValueError)):
        return True
    return isinstance(exc, MySQLError) and _errno(exc) in PERMANENT_CONNECT_ERRORS


def _never_sent(exc: BaseException) -> bool:
    """True when the statement provably never reached the server: 2006
    "server has gone away", which tornpool raises only when the command was
    not written (the connection was found closed, or a session reset ahead
    of it failed)."""
    return isinstance(exc, ConnectionLost) and _errno(exc) == CR.CR_SERVER_GONE_ERROR


class _PooledStatement(Statement):
    """One :meth:`Pool.execute`: the engine's waiter and the connection's
    command at once."""

    collect = True  # every result set: the connection is gone before nextset()
    __slots__ = ("engine", "future", "query", "args", "timeout", "deadline", "slot", "retried",
                 "queued_at")

    def __init__(self, engine: PoolEngine[Connection], future: CommandFuture[Any], query: Any,
                 args: Any, cls: Any, timeout: float | None, deadline: float) -> None:
        # (no super().__init__: this runs once per query)
        self.packet = b""
        self.seq = 0
        self.user = True
        self.timer = None
        self.cursor_class = cls
        self.handle = DETACHED
        self.replies = None
        self.error = None
        self.result = None
        self.engine = engine
        self.future = future
        self.query = query
        self.args = args
        self.timeout = timeout
        self.deadline = deadline
        self.slot: Slot[Connection] | None = None
        self.retried = False
        self.queued_at = 0.0

    # -- as the engine's waiter ----------------------------------------------------

    @property
    def done(self) -> bool:
        """No longer waiting: served (its statement runs) or finished."""
        return self.slot is not None or self.future.done()

    def deliver(self, slot: Slot[Connection]) -> None:
        self.slot = slot
        conn = slot.conn
        try:
            self.packet, self.seq = conn.statement_packet(self.query, self.args)
        except Exception as exc:
            self.resolve(None, exc)
            return
        timeout = self.timeout
        if timeout is not None:
            timeout = max(self.deadline - conn.loop.time(), 0.001)  # type: ignore[union-attr]
        self.future.attach(conn, self)
        conn.run_statement(self, timeout)

    # -- as the connection's command ---------------------------------------------

    def fail(self, exc: BaseException, sent: bool = False) -> None:
        self.resolve(None, exc)

    def resolve(self, result: Any, exc: BaseException | None) -> None:
        slot, self.slot = self.slot, None
        engine = self.engine
        if slot is not None:
            if exc is not None and _errno(exc) == ER_OPTION_PREVENTS_STATEMENT:
                hosts = getattr(engine.owner, "hosts", None)
                if hosts is not None:
                    note_error(hosts, slot.conn, exc)
            engine.release(slot)
        if exc is not None:
            if slot is not None and not self.retried and _never_sent(exc) and not self.future.done():
                # The statement never reached the server: run it elsewhere.
                self.retried = True
                self.replies = None
                self.error = None
                engine.resubmit(self, self.deadline)
                return
            engine.stats.error(exc)
            if engine.events:
                engine.events.emit("error", None, "%s: %s" % (type(exc).__name__, exc))
        self.future.settle(result, exc)


class Pool(PoolFacade[Connection]):
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
    :param setsession: statements (or ``(sql, args)``) run on each new
        connection; they are part of the session every lease starts in.
    :param configure: ``async (conn) -> None`` run on each new connection
        (and again after a session reset); part of that session too.
    :param reset: ``async (conn) -> None`` run on every returned connection.
    :param session_reset: ``"auto"`` (default): restore the session when a
        lease changed it (the server says so); ``"always"``: after every
        lease; ``"never"``: only roll back open transactions.
    :param leak_threshold: log a warning (with where it was acquired) for
        connections held longer than this; None: off.
    :param check_idle: connections idle longer than this are pinged before
        being handed out (None: never).
    :param hosts: the servers (``"h1:3306,h2"`` or a list of ``"host[:port]"``
        / ``(host, port)``), overriding the DSN's; several hosts may also be
        named in the DSN (``mysql://u@h1,h2/db``).  See :mod:`tornpool.hosts`.
    :param target_session_attrs: which server a new connection must reach:
        ``any`` (default), ``read-write``, ``read-only``, ``primary``,
        ``standby``, ``prefer-standby``; checked on the server (one query per
        connect).  Overrides the DSN's.  A pool drains when a server it uses
        leaves that role (see :mod:`tornpool.pool.failover`).
    :param load_balance_hosts: ``disable`` (try hosts in order) or ``random``.
    :param reconnect_max_interval: longest backoff delay; default 0.8 s, or
        0.25 s for a pool over a host list (a promoted server is found sooner).
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        size: int = 1,
        max_size: int | None = None,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: float | None = 3600.0,
        max_idle: float | None = 600.0,
        max_uses: int = 0,
        reconnect_interval: float = 0.1,
        reconnect_max_interval: float | None = None,
        reconnect_timeout: float = 300.0,
        reconnect_failed: Callable[[Pool], None] | None = None,
        fail_fast: bool = False,
        setsession: Sequence[Statement_] = (),
        configure: Callable[[Connection], Awaitable[None]] | None = None,
        reset: Callable[[Connection], Awaitable[None]] | None = None,
        session_reset: SessionReset = "auto",
        leak_threshold: float | None = None,
        check_idle: float | None = 0.5,
        name: str | None = None,
        hosts: Hosts | None = None,
        target_session_attrs: str | None = None,
        load_balance_hosts: str | None = None,
        **connect_kwargs: Any,
    ) -> None:
        if session_reset not in ("auto", "always", "never"):
            raise ValueError("session_reset must be 'auto', 'always' or 'never'")
        self.dsn = dsn
        self.setsession = tuple(setsession)
        self._configure = configure
        self._reset_hook = reset
        self.session_reset: SessionReset = session_reset
        connect_kwargs.setdefault("autocommit", True)
        self._connect_kwargs = connect_kwargs
        self._hosts = host_list = HostList.from_config(
            dsn, connect_kwargs, hosts, target_session_attrs, load_balance_hosts, _is_permanent)
        if reconnect_max_interval is None:
            reconnect_max_interval = 0.8 if host_list is None else HOST_LIST_RECONNECT_MAX
        PoolFacade.__init__(self, PoolEngine(
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
            recycle=self._recycle,
            reap=_reap if host_list is None else partial(reap_on_same_server, host_list, _reap),
            permanent_error=_is_permanent,
            lease_factory=PoolConnection if host_list is None else FailoverConnection,
            owner=self,
            name=name,
        ))
        self._sync: SyncPool | None = None
        if host_list is not None:
            host_list.on_role_lost = self._role_lost

    # -- properties (the engine's own: see PoolFacade) -------------------------------

    @property
    def hosts(self) -> HostList | None:
        """The servers this pool chooses among (a :class:`~tornpool.hosts.HostList`),
        or None for a pool over one server named plainly."""
        return self._hosts

    # -- connections: opening and recycling ------------------------------------------

    async def _open(self) -> Connection:
        hosts = self._hosts
        conn = await (connect(self.dsn, **self._connect_kwargs) if hosts is None else hosts.connect())
        try:
            if self.setsession:
                await conn.setup_session(self.setsession)
            if self._configure is not None:
                await self._configure(conn)
                await conn.mark_baseline()
        except BaseException:
            conn.terminate()
            raise
        return conn

    def _recycle(self, conn: Connection, slot: Slot[Connection], quiet: bool) -> Any:
        """Make a returned connection ready for the next lease: roll back an
        open transaction (logged, unless a transaction scope did it on
        purpose), restore a changed session.  Pipelined: nothing is awaited
        unless a ``configure`` or ``reset`` hook must run."""
        if conn.has_unread_result:
            # Result sets left on the wire (a CALL's status result, unread
            # nextset()s) are read and dropped before the next command; an
            # unfinished stream cannot be, cheaply: that connection goes.
            if not conn.session.drain():
                self.engine.stats.returns_bad += 1
                conn.terminate()
                return RETIRE
        in_tx = conn.in_transaction
        if in_tx:
            self.engine.stats.returns_bad += 1
            if not quiet:
                log.warning("%s: a connection was returned inside a transaction; rolled back. "
                            "Acquired at:\n%s", self.name, where_acquired(slot.site))
        if self._hosts is not None and self._hosts.role_lost(conn):
            return RETIRE  # its server left the role this pool wants
        mode = self.session_reset
        reset = mode == "always" or (mode == "auto" and conn.session_dirty)
        if reset:
            if not conn.can_reset:
                return RETIRE  # documented fallback: replace the connection
            if not conn.session.reset(_reset_failed):
                return RETIRE
            if self._configure is not None:
                return self._reconfigure(conn)
        elif in_tx and not conn.session.rollback_soon(_reset_failed):
            return RETIRE
        if self._reset_hook is not None:
            return self._reset_hook(conn)
        return None

    def _role_lost(self, host: HostSpec) -> None:
        target = self._hosts.target if self._hosts is not None else "?"
        log.warning("%s: %s is no longer %s; replacing every connection", self.name, host, target)
        self.engine.drain()

    async def _reconfigure(self, conn: Connection) -> None:
        await conn.ping()  # written after the reset: its reply says the reset is done
        assert self._configure is not None
        await self._configure(conn)
        await conn.mark_baseline()

    async def connect(self) -> Pool:
        """Open ``size`` connections at once (Momoko semantics).  Requests
        may be issued before it resolves.  Resolves to the pool.

        :raises OperationalError: a connection could not be opened (bad
            credentials, unreachable server...); the pool is then closed.
        :raises DSNError: the DSN cannot be understood.
        :raises PoolClosed: the pool is closed.
        """
        engine = self.engine
        if engine.closed:
            raise PoolClosed(0, "%s is closed" % self.name)
        errors = await engine.fill(announce=False)
        if errors:
            await self._close_quietly()
            raise errors[0]
        return self

    async def _close_quietly(self) -> None:
        if not self.engine.closed:
            await self.engine.close(timeout=1.0)

    async def __aenter__(self) -> Pool:
        return await self.connect()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._close_quietly()

    # -- acquiring ------------------------------------------------------------------------

    async def getconn(self, timeout: float | None = None) -> PoolConnection:
        """Take a connection; give it back with :meth:`putconn` (or use it as
        a context manager).

        :param timeout: deadline for the whole acquire; default: the pool's.
        :returns: a :class:`PoolConnection` lease.
        :raises PoolTimeout: none available before the deadline.
        :raises PoolClosed: the pool is closed or closes while waiting.
        :raises PoolTooManyWaiters: ``max_waiting`` requests already wait.
        :raises PoolUnavailable: ``fail_fast`` and the server is down.
        """
        lease = await self.engine.acquire(timeout)
        assert isinstance(lease, PoolConnection)
        return lease

    def acquire(self, timeout: float | None = None) -> AcquireScope[PoolConnection]:
        """``async with pool.acquire() as conn:``, or ``conn = await
        pool.acquire()`` / ``with (yield pool.acquire()) as conn:`` (the
        lease releases itself on exit)."""
        return AcquireScope(self.engine, timeout)

    def putconn(self, conn: Any) -> None:
        """Give a connection back (synchronous).

        :raises ForeignConnection: ``conn`` did not come from this pool.
        :raises ConnectionReleased: ``conn`` was already given back.
        """
        if isinstance(conn, Connection):
            lease = self.engine.lease_of(conn)
            if lease is None:
                raise ForeignConnection(0, "this connection was not handed out by %s" % self.name)
            conn = lease
        self.engine.check_lease(conn).release()

    @contextlib.contextmanager
    def manage(self, conn: PoolConnection) -> Iterator[PoolConnection]:
        """``with pool.manage(conn):`` -- :meth:`putconn` on exit."""
        try:
            yield conn
        finally:
            if not conn.released:
                self.putconn(conn)

    # -- statements on some connection ---------------------------------------------------

    def execute(self, query: str | bytes, args: Any = None, *, timeout: float | None = None,
                cursor: type[Any] | None = None) -> asyncio.Future[Any]:
        """Run one statement on some pooled connection.

        :param timeout: one deadline for acquire and statement (default: the
            pool's ``timeout`` for the acquire, none for the statement).
        :returns: (resolves to) a buffered cursor holding every result set;
            it keeps no connection.
        :raises PoolTimeout, PoolClosed: see :meth:`getconn`.
        :raises CommandTimeout: the statement ran out of time.
        """
        engine = self.engine
        loop = engine.bind()
        fut: CommandFuture[Any] = CommandFuture(loop=loop)
        try:
            cls = Cursor if cursor is None else cursor_class_for(cursor)
            if cls.streaming:
                raise ValueError("pool.execute() returns buffered cursors; stream through "
                                 "pool.acquire() and conn.execute(..., cursor=SSCursor)")
        except Exception as exc:
            fut.set_exception(exc)
            return fut
        wait = engine.timeout if timeout is None else timeout
        request = _PooledStatement(engine, fut, query, args, cls, timeout, loop.time() + wait)
        engine.submit(request, wait, loop)
        return fut

    async def _on_lease(self, method: str, timeout: float | None, *args: Any, **kwargs: Any) -> Any:
        deadline = None if timeout is None else _monotonic() + timeout
        lease = await self.getconn(timeout)
        try:
            if deadline is not None:
                kwargs["timeout"] = max(deadline - _monotonic(), 0.001)
            return await getattr(lease, method)(*args, **kwargs)
        finally:
            lease.release()

    async def executemany(self, query: str, seq_of_args: Iterable[Any], *,
                          timeout: float | None = None) -> Cursor:
        """Run ``query`` once per parameter set; resolves to a cursor."""
        result: Cursor = await self._on_lease("executemany", timeout, query, list(seq_of_args))
        return result

    async def callproc(self, procname: str, args: Sequence[Any] = (), *,
                       timeout: float | None = None) -> Cursor:
        """Call a stored procedure; resolves to a cursor (OUT parameters are
        read with ``SELECT @_procname_0`` as in PyMySQL)."""
        result: Cursor = await self._on_lease("callproc", timeout, procname, args)
        return result

    async def ping(self, *, timeout: float | None = None) -> None:
        """COM_PING on a pooled connection; resolves to None."""
        await self._on_lease("ping", timeout)

    @overload
    def transaction(self, statements: None = None, *,
                    timeout: float | None = None) -> TransactionScope[PoolConnection]: ...

    @overload
    def transaction(self, statements: Sequence[Statement_], *,
                    timeout: float | None = None) -> Awaitable[list[Cursor]]: ...

    def transaction(self, statements: Sequence[Statement_] | None = None, *,
                    timeout: float | None = None) -> TransactionScope[PoolConnection] | Awaitable[list[Cursor]]:
        """Two forms.

        ``await pool.transaction([sql, (sql, params), ...])`` (Momoko): BEGIN,
        each statement, COMMIT; ROLLBACK and re-raise on error.  Resolves
        to the list of cursors, one per statement.

        ``async with pool.transaction() as conn:`` BEGIN on enter, COMMIT on
        success, ROLLBACK on error.  ``tx = yield pool.transaction()`` (for
        ``@gen.coroutine``): a lease with BEGIN done; ``yield tx.commit()``,
        and ``with tx:`` releases it (rolling back what was not committed).
        """
        scope = TransactionScope(lambda: self.getconn(timeout))
        if statements is None:
            return scope
        return self._transaction(scope, list(statements))

    async def _transaction(self, scope: TransactionScope[PoolConnection], statements: list[Statement_]) -> list[Cursor]:
        cursors: list[Cursor] = []
        async with scope as conn:
            for stmt in statements:
                if isinstance(stmt, str):
                    cursors.append(await conn.execute(stmt))
                else:
                    cursors.append(await conn.execute(stmt[0], stmt[1]))
        return cursors

    # -- blocking face ------------------------------------------------------------------

    def sync(self) -> SyncPool:
        """The blocking face of this pool, for worker threads; see
        :class:`tornpool.pool.sync.SyncPool`."""
        if self._sync is None:
            from tornpool.pool.sync import SyncPool

            self._sync = SyncPool(self)
        return self._sync

    def __repr__(self) -> str:
        s = self.engine.snapshot()
        return "<Pool %s size=%d/%d available=%d%s>" % (
            self.name, s["pool_size"], s["pool_max"], s["pool_available"],
            " closed" if self.closed else "")


def _reset_failed(exc: BaseException) -> None:
    log.warning("tornpool.pool: restoring a returned connection's session failed; "
                "it was closed: %s", exc)


async def _reap(dead: Connection, live: Connection, kill: bool) -> bool:
    """Make the server drop a connection abandoned mid-statement (``KILL``
    when ``kill``), then watch for up to a second until its thread has left
    the processlist -- KILL only flags the thread, which exits a little
    later.  Resolves to True once it is gone."""
    tid = int(dead.thread_id)
    if kill:
        try:
            await live.execute("KILL %d" % tid, timeout=10.0)
        except MySQLError as exc:
            if _errno(exc) == 1094:  # unknown thread: gone already
                return True
            raise
    deadline = _monotonic() + 1.0
    while True:
        cur = await live.execute(
            "SELECT 1 FROM information_schema.processlist WHERE id = %s", (tid,), timeout=5.0)
        if not cur.fetchall():
            return True
        if _monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
