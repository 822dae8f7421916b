"""Any DB-API 2 driver behind tornpool's awaitables: :class:`ExecutorPool`.

Each pooled connection lives in a thread of its own, which opens it, runs
every call on it and closes it (sqlite3 refuses cross-thread use; no driver
is made safer by it).  The pool is tornpool's
:class:`~tornpool.pool.PoolEngine` -- the same FIFO waiters, cap, deadlines,
health checks, stats and close as :class:`tornpool.Pool` -- and its calls are
Futures that resolve on the loop when the thread returns, so they work with
``await`` and with ``yield`` under ``@tornado.gen.coroutine``::

    pool = ExecutorPool(sqlite3, "/srv/app.db", size=4)
    pool = ExecutorPool(MySQLdb, kwargs=dict(host="db", user="app", db="shop"), size=10)
    pool = ExecutorPool("psycopg", "dbname=shop host=db", size=10)

    res = await pool.execute("SELECT id, name FROM item WHERE id = %s", (42,))
    row = res.fetchone()
    async with pool.transaction() as conn:
        await conn.execute("UPDATE item SET seen = seen + 1 WHERE id = %s", (42,))

:meth:`ExecutorPool.execute` is served like :meth:`tornpool.Pool.execute`:
the request is the engine's waiter, and the thread that finishes one call is
given the next waiter's call in the same loop callback that resolves the
first caller.  A call whose caller gives up (timeout, cancellation) never
has its connection handed to anyone before its thread returns; see
:mod:`._executor_bound` and ``docs/dbapi.md``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import ModuleType, TracebackType
from typing import Any, Literal, overload

from tornpool.errors import DSNError, PoolClosed
from tornpool.pool import RETIRE, PERMANENT_CONNECT_ERRORS, PoolEngine, Slot
from tornpool.pool.facade import PoolFacade
from tornpool.pool.lease import where_acquired

from . import _executor_calls as calls
from ._executor_bound import Binding, BoundConnection, CallFuture
from ._executor_driver import Driver, ExecutorConfigError, driver_for, load_module, run_sql
from tornpool.pool.scopes import AcquireScope, TransactionScope

from ._executor_lease import ExecutorConnection
from ._executor_pooled import Pipeline, PooledCall
from ._executor_thread import Inbox
from ._sqlite_result import Result

__all__ = ["ExecutorPool", "ExecutorConnection", "ExecutorConfigError", "Driver", "driver_for"]

log = logging.getLogger("tornpool.dbapi")

Statement = str | tuple[Any, Any]
SessionReset = Literal["never", "always"]

#: Keys :meth:`ExecutorPool.stats` adds to the engine's.
EXTRA_STATS = ("threads_alive", "calls_abandoned", "abandoned_running")


class ExecutorPool(PoolFacade[BoundConnection]):
    """A pool of DB-API connections, each bound to its own thread; see the
    module docstring.  Constructing it touches no event loop and starts no
    thread; it binds to the loop on which it is first used.

    :param module: the DB-API 2 module (``sqlite3``, ``MySQLdb``, ``pymysql``,
        ``psycopg``, ``psycopg2``, any other) or its name.
    :param args: positional arguments of ``module.connect``.
    :param kwargs: keyword arguments of ``module.connect``.
    :param size: connections opened by :meth:`connect` and kept open.
    :param max_size: cap on connections -- and on their threads (default ``size``).
    :param timeout: default deadline of one acquire, in seconds.
    :param autocommit: switch the driver's autocommit on (default): every
        statement commits, ``transaction()`` sends ``begin_sql``.  With False
        the driver's implicit transactions apply; :meth:`execute` and
        :meth:`executemany` then commit before they resolve.
    :param init_sql: statements run on every new connection (and after a
        session reset).
    :param initializer: ``callable(dbapi_connection)`` run in the
        connection's thread on every new connection (and after a reset).
    :param reset: ``callable(dbapi_connection)`` run in the thread on every
        returned connection.
    :param session_reset: ``"never"`` (default): a returned connection is
        only rolled back if a transaction is open; ``"always"``: the driver's
        session reset after every use (PostgreSQL's ``DISCARD ALL``; drivers
        without one have the connection closed and replaced).
    :param begin_sql: what opens a transaction in autocommit mode (default:
        the driver's: ``BEGIN``; ``BEGIN IMMEDIATE`` for sqlite3).
    :param check_idle: ping connections idle longer than this before handing
        them out (None: never).
    :param driver: a :class:`Driver` to use instead of :func:`driver_for`'s.
    :raises ExecutorConfigError: ``module`` is not a DB-API module, or an
        option is invalid.

    ``max_waiting``, ``max_lifetime``, ``max_idle``, ``max_uses``,
    ``reconnect_*``, ``fail_fast``, ``leak_threshold`` and ``name`` are
    :class:`tornpool.Pool`'s.
    """

    def __init__(
        self,
        module: ModuleType | str,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        size: int = 1,
        max_size: int | None = None,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: float | None = 3600.0,
        max_idle: float | None = 600.0,
        max_uses: int = 0,
        check_idle: float | None = 0.5,
        autocommit: bool = True,
        init_sql: Sequence[str] = (),
        initializer: Callable[[Any], Any] | None = None,
        reset: Callable[[Any], Any] | None = None,
        session_reset: SessionReset = "never",
        begin_sql: str | None = None,
        reconnect_interval: float = 0.1,
        reconnect_max_interval: float = 0.8,
        reconnect_timeout: float = 300.0,
        reconnect_failed: Callable[[ExecutorPool], None] | None = None,
        fail_fast: bool = False,
        leak_threshold: float | None = None,
        driver: Driver | None = None,
        name: str | None = None,
    ) -> None:
        self.module = load_module(module)
        _check_options(size, max_size, timeout, session_reset, init_sql, initializer, reset, kwargs)
        self.driver = driver if driver is not None else driver_for(self.module)
        self.session_reset: SessionReset = session_reset
        self.autocommit = bool(autocommit)
        self.begin_sql = begin_sql or self.driver.begin_sql
        self._reset_hook = reset
        connect, cargs, ckwargs = self.module.connect, args, dict(kwargs or {})
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
            permanent_error=self._permanent,
            lease_factory=ExecutorConnection,
            spare=self._spare,
            owner=self,
            name=name or "dbapi-%s-%x" % (self.module.__name__, id(self)),
        ))
        self._binding = Binding(self.engine.name, self.driver, lambda: connect(*cargs, **ckwargs),
                                self.autocommit, init_sql, initializer, self.begin_sql,
                                self.engine.max_size)
        self._binding.kill = self._kill
        # every returned connection cleaned: no call may follow another directly
        self._pipeline = Pipeline(self.engine, session_reset == "never" and reset is None)

    # -- properties -----------------------------------------------------------------

    @property
    def paramstyle(self) -> str:
        """The driver's placeholder style (``qmark``, ``format``, ``pyformat``...)."""
        return str(self.module.paramstyle)

    # -- connections --------------------------------------------------------------------

    async def _open(self) -> BoundConnection:
        binding = self._binding
        if binding.inbox is None:
            binding.loop = asyncio.get_running_loop()
            binding.inbox = Inbox(binding.loop)
        return await BoundConnection.open(binding)

    def _spare(self) -> PooledCall | None:
        return self._pipeline.spare()

    def _kill(self, target: BoundConnection) -> None:
        """Have the server stop ``target``'s statement (``kill_sql``): on a
        short-lived connection of its own when the cap leaves room for one
        (it is counted like any other), else on the next pooled connection
        that frees up, taken ahead of the queue.  With ``max_size=1`` no
        other connection can exist: the statement runs to its end."""
        kill_sql = self.driver.kill_sql
        assert kill_sql is not None
        sql = kill_sql.format(int(target.server_id))
        binding = self._binding
        if binding.budget.try_reserve():
            threading.Thread(target=self._kill_aside, args=(sql,), daemon=True,
                             name="%s-kill" % self.name).start()
        elif self.max_size > 1:
            self.engine.fleet.spawn(self._kill_pooled(target, sql))

    def _kill_aside(self, sql: str) -> None:
        """(helper thread) ``sql`` on a connection opened for it alone."""
        binding = self._binding
        try:
            raw = binding.opener()
            try:
                run_sql(raw, sql)
            finally:
                calls.close_raw(raw)
        except Exception as exc:  # noqa: BLE001 - best effort: the statement ends by itself
            log.debug("%s: %s failed: %r", self.name, sql, exc)
        finally:
            assert binding.inbox is not None
            binding.inbox.post(binding.budget.free)

    async def _kill_pooled(self, target: BoundConnection, sql: str) -> None:
        try:
            lease = await self.engine.acquire(self.engine.check_timeout, priority=True)
        except Exception as exc:  # noqa: BLE001
            log.debug("%s: no connection to stop a statement with: %r", self.name, exc)
            return
        assert isinstance(lease, ExecutorConnection)
        try:
            if target.busy:
                await lease.execute(sql)
        except Exception as exc:  # noqa: BLE001
            log.debug("%s: %s failed: %r", self.name, sql, exc)
        finally:
            lease.release()

    def _permanent(self, exc: BaseException) -> bool:
        if isinstance(exc, (ExecutorConfigError, DSNError, TypeError, ValueError)):
            return True
        if self.driver.name == "sqlite3":
            return True  # a file that cannot be opened stays so
        args: tuple[Any, ...] = getattr(exc, "args", ())
        if self.driver.name in ("MySQLdb", "pymysql"):
            return bool(args) and args[0] in PERMANENT_CONNECT_ERRORS
        text = str(exc)
        return any(s in text for s in ("password authentication failed", "does not exist",
                                       "no pg_hba.conf entry"))

    def _recycle(self, conn: BoundConnection, slot: Slot[BoundConnection], quiet: bool) -> Any:
        """Make a returned connection ready for the next caller, in its
        thread: roll back an open transaction (logged unless ``quiet``),
        reset the session if asked, run the ``reset`` hook.  A broken
        connection, or one whose call was abandoned, is closed."""
        if conn.unusable:
            return RETIRE
        rollback = conn.in_transaction
        if rollback:
            self.engine.stats.returns_bad += 1
            if not quiet:
                log.warning("%s: a connection was returned inside a transaction; rolled back. "
                            "Acquired at:\n%s", self.name, where_acquired(slot.site))
        reset = self.session_reset == "always"
        if reset and self.driver.reset is None:
            return RETIRE  # documented: no reset in the driver, so a new connection
        if not (rollback or reset or self._reset_hook is not None):
            return None
        b = self._binding
        fut = CallFuture(loop=b.loop or asyncio.get_running_loop())
        conn.run(fut, calls.recycle_raw, (self.driver, self.autocommit, rollback, reset, b.init_sql,
                                          b.initializer, self._reset_hook),
                 None, sql="ROLLBACK" if rollback else None)
        return fut

    async def connect(self) -> ExecutorPool:
        """Open ``size`` connections (each in its thread) at once.  Resolves
        to the pool.

        :raises: the driver's connect error (the pool is then closed).
        :raises PoolClosed: the pool is closed.
        """
        engine = self.engine
        if engine.closed:
            raise PoolClosed(0, "%s is closed" % self.name)
        errors = await engine.fill(announce=False)
        if errors:
            if not engine.closed:
                await self.close(timeout=1.0)
            raise errors[0]
        return self

    async def __aenter__(self) -> ExecutorPool:
        return await self.connect()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if not self.closed:
            await self.close()

    # -- calls on some connection ------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], sql: Any,
                timeout: float | None) -> CallFuture:
        engine = self.engine
        loop = engine.bind()
        fut = CallFuture(loop=loop)
        wait = engine.timeout if timeout is None else timeout
        engine.submit(PooledCall(self._pipeline, fut, fn, args, sql, timeout, loop.time() + wait),
                      wait, loop)
        return fut

    def execute(self, sql: Any, params: Any = None, *, timeout: float | None = None) -> CallFuture:
        """Run one statement on some connection, in its thread, and read its
        whole result there (committed before it resolves, with or without
        autocommit).

        :param params: for the driver's placeholders (``paramstyle``); None
            sends none.
        :param timeout: one deadline for acquire and call (default: the
            pool's ``timeout`` for the acquire, none for the call).  A call
            that runs out of time raises
            :class:`~tornpool.errors.CommandTimeout` at once; its connection
            is closed once its thread returns.
        :returns: (resolves to) a :class:`~tornpool.dbapi.Result`: every row,
            ``description``, ``rowcount`` (rows returned, or changed),
            ``lastrowid``; it holds no connection.
        :raises PoolTimeout, PoolClosed, PoolTooManyWaiters: no connection.
        :raises: the driver's own errors, unchanged.
        """
        return self._submit(calls.statement, (sql, params, not self.autocommit), sql, timeout)

    def executemany(self, sql: Any, seq_of_params: Iterable[Any], *,
                    timeout: float | None = None) -> CallFuture:
        """The driver's ``executemany`` as one transaction: every row or none.

        :returns: (resolves to) a :class:`~tornpool.dbapi.Result` without rows.
        :raises: as :meth:`execute`.
        """
        begin = self.begin_sql if self.autocommit else None
        return self._submit(calls.many, (sql, list(seq_of_params), begin, not self.autocommit),
                            None, timeout)

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> CallFuture:
        """``fn(dbapi_connection, *args)`` in some connection's thread.  A
        transaction ``fn`` leaves open is rolled back (with a warning).

        :returns: (resolves to) what ``fn`` returns.
        :raises: as :meth:`execute`, and what ``fn`` raises.
        """
        return self._submit(fn, args, None, timeout)

    def acquire(self, timeout: float | None = None) -> AcquireScope[ExecutorConnection]:
        """``async with pool.acquire() as conn:``, or ``conn = await
        pool.acquire()`` / ``with (yield pool.acquire()) as conn:``.

        :returns: a scope resolving to an :class:`ExecutorConnection`.
        :raises PoolTimeout, PoolClosed, PoolTooManyWaiters: no connection.
        """
        return AcquireScope(self.engine, timeout)

    @overload
    def transaction(self, statements: None = None, *,
                    timeout: float | None = None) -> TransactionScope[ExecutorConnection]: ...

    @overload
    def transaction(self, statements: Sequence[Statement], *,
                    timeout: float | None = None) -> Awaitable[list[Result]]: ...

    def transaction(self, statements: Sequence[Statement] | None = None, *,
                    timeout: float | None = None) -> TransactionScope[ExecutorConnection] | Awaitable[list[Result]]:
        """``async with pool.transaction() as conn:`` BEGIN, COMMIT on
        success, ROLLBACK on error; ``tx = yield pool.transaction()`` a lease
        with BEGIN done.  With a list of statements (SQL or ``(SQL,
        params)``): a coroutine resolving to their results, run in one
        transaction (ROLLBACK and the error if one fails)."""
        scope: TransactionScope[ExecutorConnection] = TransactionScope(lambda: self.acquire(timeout))
        if statements is None:
            return scope
        return _run_all(scope, list(statements))

    # -- management ---------------------------------------------------------------------

    def stats(self, reset: bool = False) -> dict[str, int]:
        """:meth:`tornpool.Pool.stats`' keys, plus ``threads_alive``
        (connection threads, counted until their connection is closed),
        ``calls_abandoned`` (calls whose caller gave up while the thread
        ran) and ``abandoned_running`` (threads still running one)."""
        b = self._binding
        extra = {"threads_alive": b.budget.alive, "calls_abandoned": b.abandoned_calls,
                 "abandoned_running": b.abandoned_running}
        if reset:
            b.abandoned_calls = 0
        out = self.engine.snapshot(reset)
        out.update(extra)
        return out

    def resize(self, size: int, max_size: int | None = None) -> None:
        """New sizes; the pool grows or shrinks in the background."""
        self.engine.resize(size, max_size)
        budget = self._binding.budget
        budget.cap = self.engine.max_size
        budget.wake()

    async def close(self, timeout: float = 5.0) -> None:
        """Close gracefully: waiters get :class:`~tornpool.errors.PoolClosed`,
        idle connections close at once, leased ones when given back (or are
        cut off after ``timeout`` seconds, their running calls asked to
        stop).  Resolves once every connection thread has ended, or after
        another ``timeout`` seconds.

        :raises PoolClosed: already closed.
        """
        if not self.engine.closed:
            self._pipeline.close(PoolClosed(0, "%s is closed" % self.name))
        await self.engine.close(timeout)
        if self._binding.loop is not None and not await self._binding.budget.drained(timeout):
            log.warning("%s: %d connection thread(s) still running after close()", self.name,
                        self._binding.budget.alive)

    def __repr__(self) -> str:
        s = self.engine.snapshot()
        return "<ExecutorPool %s %s size=%d/%d available=%d%s>" % (
            self.name, self.module.__name__, s["pool_size"], s["pool_max"], s["pool_available"],
            " closed" if self.closed else "")


async def _run_all(scope: TransactionScope[ExecutorConnection], statements: list[Statement]) -> list[Result]:
    results: list[Result] = []
    async with scope as conn:
        for stmt in statements:
            if isinstance(stmt, tuple):
                results.append(await conn.execute(stmt[0], stmt[1]))
            else:
                results.append(await conn.execute(stmt))
    return results


def _check_options(size: Any, max_size: Any, timeout: Any, session_reset: Any, init_sql: Any,
                   initializer: Any, reset: Any, kwargs: Any) -> None:
    """:raises ExecutorConfigError: an option that makes no pool."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ExecutorConfigError("size must be an integer >= 0, not %r" % (size,))
    if max_size is not None and (not isinstance(max_size, int) or isinstance(max_size, bool)
                                 or max_size < max(size, 1)):
        raise ExecutorConfigError("max_size must be an integer >= 1 and >= size, not %r" % (max_size,))
    if not isinstance(timeout, (int, float)) or timeout < 0:
        raise ExecutorConfigError("timeout must be a number of seconds >= 0, not %r" % (timeout,))
    if session_reset not in ("never", "always"):
        raise ExecutorConfigError("session_reset must be 'never' or 'always', not %r" % (session_reset,))
    if isinstance(init_sql, (str, bytes)):
        raise ExecutorConfigError("init_sql is a sequence of statements, not one string")
    for name, fn in (("initializer", initializer), ("reset", reset)):
        if fn is not None and not callable(fn):
            raise ExecutorConfigError("%s must be callable, not %r" % (name, fn))
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ExecutorConfigError("kwargs must be a dict of connect() keyword arguments")
