"""Read/write split: :class:`ReplicaSet` sends writes to a primary pool and
reads to replica pools whose lag, read from the server, is within a bound.

::

    rs = ReplicaSet.from_dsn("mysql://app@db1,db2,db3/shop", max_replica_lag=2.0, max_size=10)
    async with rs:
        await rs.execute("INSERT INTO item (name) VALUES (%s)", ("x",))   # the primary
        cur = await rs.read("SELECT name FROM item WHERE id = %s", (7,))  # a replica, or the primary
        async with rs.session() as s:                                      # read-your-writes
            await s.execute("UPDATE item SET seen = 1 WHERE id = 7")      # pins a primary lease
            cur = await s.read("SELECT seen FROM item WHERE id = 7")      # ...and reads on it

Which replica: one whose last check (every ``lag_check_interval`` seconds,
in the background) found it replicating with ``Seconds_Behind_Master`` (or
``lag_query``'s number) at most ``max_replica_lag``; among those, in turn.
None qualifies -- lag too high, replication stopped (the server reports no
lag), unreachable, not a replica any more -- and reads go to the primary; the
replica is used again from the first check that finds it back within the
bound.  A read that could not get a replica connection (``PoolTimeout``,
``PoolUnavailable``, ``PoolClosed``, or 2006 from a statement never sent:
it never reached a server) runs on the primary; nothing else is retried.

Read-your-writes: inside :meth:`ReplicaSet.transaction` and on a lease of
:meth:`ReplicaSet.acquire`, every statement runs on one primary connection;
a :meth:`ReplicaSet.session` reads from replicas until its first write and
from then on pins a primary lease, on which its later reads run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from functools import partial
from types import TracebackType
from typing import Any

from tornpool.cursors import Cursor
from tornpool.errors import ConnectionLost, PoolClosed, PoolTimeout, PoolUnavailable
from tornpool.hosts import Hosts
from tornpool.pool.connection import PoolConnection
from tornpool.pool.mysql import Pool
from tornpool.pool.scopes import AcquireScope, TransactionScope
from tornpool.roles import replica_lag, replica_status

__all__ = ["ReplicaSet", "RoutedSession"]

log = logging.getLogger("tornpool.pool")
_monotonic = time.monotonic

#: Longest pause between two checks of a replica that keeps failing them.
MAX_CHECK_BACKOFF = 10.0
_CR_SERVER_GONE = 2006  # tornpool raises it only for a statement never written


def _never_reached(exc: BaseException) -> bool:
    if isinstance(exc, (PoolTimeout, PoolUnavailable, PoolClosed)):
        return True
    return isinstance(exc, ConnectionLost) and bool(exc.args) and exc.args[0] == _CR_SERVER_GONE


class _NotReplicating(Exception):
    pass


def _checked(r: _Replica, task: asyncio.Future[None]) -> None:
    r.task = None
    if not task.cancelled() and task.exception() is not None:
        log.error("%s: replica check failed: %r", r.pool.name, task.exception())


class _Replica:
    """One replica pool and what its last check found."""

    __slots__ = ("pool", "usable", "lag", "reason", "checked_at", "failures", "next_check", "task")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.usable = False
        self.lag: float | None = None
        self.reason = "not checked yet"
        self.checked_at: float | None = None
        self.failures = 0
        self.next_check = 0.0
        self.task: asyncio.Future[None] | None = None

    def found(self, usable: bool, lag: float | None, reason: str, now: float,
              interval: float) -> None:
        if usable != self.usable:
            log.info("%s: replica %s", self.pool.name,
                     "in use" if usable else "not used for reads: " + reason)
        self.usable, self.lag, self.reason, self.checked_at = usable, lag, reason, now
        self.failures = 0
        self.next_check = now + interval

    def failed(self, reason: str, now: float, interval: float) -> None:
        if self.usable:
            log.warning("%s: replica not used for reads: %s", self.pool.name, reason)
        self.usable, self.lag, self.reason, self.checked_at = False, None, reason, now
        self.failures += 1
        self.next_check = now + min(interval * 2 ** (self.failures - 1), max(MAX_CHECK_BACKOFF, interval))


class ReplicaSet:
    """A primary pool and replica pools, with reads routed by replica lag;
    see the module docstring.  It owns its pools: :meth:`close` closes them.

    Constructing it touches no event loop.  The lag checks run in the
    background from :meth:`connect` (or the first read) on.

    :param primary: the pool every write, transaction and pinned lease uses
        (give it ``target_session_attrs="read-write"`` over every host to
        follow failovers).
    :param replicas: pools to read from (for instance one per replica host,
        with ``target_session_attrs="read-only"``).
    :param max_replica_lag: seconds a replica may be behind and still serve
        reads; None: any replica that answers (lag not checked).
    :param lag_check_interval: seconds between two checks of a replica.
    :param lag_check_timeout: deadline of one check.
    :param lag_query: SQL returning one number, the lag in seconds (NULL:
        unknown), instead of ``SHOW REPLICA STATUS`` -- e.g. from a heartbeat
        table, for accounts without the ``REPLICA MONITOR`` privilege.
    :raises TypeError: something else than pools.
    :raises ValueError: a negative lag bound, intervals <= 0, or the primary
        among the replicas.
    """

    def __init__(self, primary: Pool, replicas: Sequence[Pool] = (), *,
                 max_replica_lag: float | None = 5.0, lag_check_interval: float = 1.0,
                 lag_check_timeout: float = 2.0, lag_query: str | None = None) -> None:
        if not isinstance(primary, Pool) or not all(isinstance(r, Pool) for r in replicas):
            raise TypeError("ReplicaSet takes tornpool.Pool objects")
        if any(r is primary for r in replicas):
            raise ValueError("the primary pool cannot also be a replica pool")
        if max_replica_lag is not None and max_replica_lag < 0:
            raise ValueError("max_replica_lag must be None or >= 0")
        if lag_check_interval <= 0 or lag_check_timeout <= 0:
            raise ValueError("lag_check_interval and lag_check_timeout must be > 0")
        self._primary = primary
        self._replicas = [_Replica(pool) for pool in replicas]
        self.max_replica_lag = max_replica_lag
        self.lag_check_interval = lag_check_interval
        self.lag_check_timeout = lag_check_timeout
        self.lag_query = lag_query
        #: A check older than this no longer vouches for a replica.
        self.stale_after = 3 * lag_check_interval + lag_check_timeout
        self._turn = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_dsn(cls, dsn: str | None = None, *, hosts: Hosts | None = None,
                 max_replica_lag: float | None = 5.0, lag_check_interval: float = 1.0,
                 lag_check_timeout: float = 2.0, lag_query: str | None = None,
                 replica_timeout: float = 2.0, replica_reconnect_interval: float = 5.0,
                 **pool_kwargs: Any) -> ReplicaSet:
        """A primary pool over every host (``target_session_attrs=
        read-write``, so it follows a failover) and one replica pool per host
        (``read-only``, one connection kept, ``fail_fast``): whichever hosts
        are replicas at a given time serve the reads; the pool of a host that
        is not one finds no server and keeps trying in the background, every
        ``replica_reconnect_interval`` seconds at most.

        :param replica_timeout: acquire deadline of the replica pools: a read
            that gets no replica connection within it runs on the primary.
        :param replica_reconnect_interval: the replica pools'
            ``reconnect_max_interval``: how soon a host that became a replica
            (a demoted primary) serves reads again.
        :param pool_kwargs: :class:`~tornpool.Pool` arguments for every pool
            (``max_size``, ``user``...); ``size`` applies to the primary only.
        :raises DSNError: a malformed DSN or host list.
        """
        name = pool_kwargs.pop("name", None)
        kwargs = dict(pool_kwargs)
        kwargs.setdefault("target_session_attrs", "read-write")
        primary = Pool(dsn, hosts=hosts, name=name, **kwargs)
        assert primary.hosts is not None
        replica_kwargs = {k: v for k, v in pool_kwargs.items()
                          if k not in ("size", "timeout", "fail_fast", "target_session_attrs",
                                       "load_balance_hosts")}
        replica_kwargs.setdefault("max_size", max(primary.max_size, 1))
        replica_kwargs.setdefault("reconnect_max_interval", replica_reconnect_interval)
        replicas = [Pool(dsn, hosts=[str(host)], size=1, timeout=replica_timeout, fail_fast=True,
                         target_session_attrs="read-only", name="%s-read-%s" % (primary.name, host),
                         **replica_kwargs)
                    for host in primary.hosts.hosts]
        return cls(primary, replicas, max_replica_lag=max_replica_lag,
                   lag_check_interval=lag_check_interval, lag_check_timeout=lag_check_timeout,
                   lag_query=lag_query)

    # -- pools and state ------------------------------------------------------------

    @property
    def primary(self) -> Pool:
        return self._primary

    @property
    def replicas(self) -> tuple[Pool, ...]:
        return tuple(r.pool for r in self._replicas)

    @property
    def closed(self) -> bool:
        return self._closed

    def replica_status(self) -> list[dict[str, Any]]:
        """What the last check found, per replica pool: ``pool`` (its name),
        ``usable``, ``lag`` (seconds or None), ``reason`` (why not usable),
        ``checked_s`` (seconds since, or None)."""
        now = _monotonic()
        return [{"pool": r.pool.name, "usable": not self._why_not(r, now), "lag": r.lag,
                 "reason": self._why_not(r, now),
                 "checked_s": None if r.checked_at is None else now - r.checked_at}
                for r in self._replicas]

    def _why_not(self, r: _Replica, now: float) -> str:
        """Why ``r`` serves no reads now ("" if it does)."""
        if not r.usable:
            return r.reason
        if r.pool.closed:
            return "pool closed"
        if r.pool.last_connect_error is not None:
            return "cannot connect: %s" % (r.pool.last_connect_error,)
        if r.checked_at is None or now - r.checked_at > self.stale_after:
            return "last check too old"
        return ""

    def reader(self) -> Pool:
        """The pool a read would use now: a replica within the lag bound (in
        turn), else the primary."""
        replica = self._pick()
        return self._primary if replica is None else replica.pool

    def _pick(self) -> _Replica | None:
        if self._task is None and not self._closed:
            self._start()
        now = _monotonic()
        usable = [r for r in self._replicas if not self._why_not(r, now)]
        if not usable:
            return None
        self._turn = (self._turn + 1) % len(usable)
        return usable[self._turn]

    # -- statements -----------------------------------------------------------------

    def execute(self, query: str | bytes, args: Any = None, *, timeout: float | None = None,
                cursor: type[Any] | None = None) -> asyncio.Future[Any]:
        """Run a statement on the primary (:meth:`tornpool.Pool.execute`);
        resolves to a buffered cursor."""
        return self._primary.execute(query, args, timeout=timeout, cursor=cursor)

    async def read(self, query: str | bytes, args: Any = None, *, timeout: float | None = None,
                   cursor: type[Any] | None = None) -> Any:
        """Run a read on a replica within the lag bound, else on the primary.

        :param timeout: one deadline for acquire and statement, as for
            :meth:`tornpool.Pool.execute` (a fallback to the primary gets what
            is left of it).
        :returns: (resolves to) a buffered cursor.
        :raises PoolTimeout, PoolClosed, CommandTimeout, ...: as
            :meth:`tornpool.Pool.execute` raises them.
        """
        replica = self._pick()
        if replica is None:
            return await self._primary.execute(query, args, timeout=timeout, cursor=cursor)
        started = _monotonic()
        try:
            return await replica.pool.execute(query, args, timeout=timeout, cursor=cursor)
        except Exception as exc:
            if not _never_reached(exc) or self._closed:
                raise
            replica.failed("%s: %s" % (type(exc).__name__, exc), _monotonic(), self.lag_check_interval)
            left = None if timeout is None else timeout - (_monotonic() - started)
            if left is not None and left <= 0:
                raise
        return await self._primary.execute(query, args, timeout=left, cursor=cursor)

    def acquire(self, timeout: float | None = None, *, read_only: bool = False) -> AcquireScope[PoolConnection]:
        """A lease, as :meth:`tornpool.Pool.acquire`: on the primary, or with
        ``read_only=True`` on a replica within the lag bound (else the
        primary).  Every statement on the lease runs on its one connection."""
        return (self.reader() if read_only else self._primary).acquire(timeout)

    def transaction(self, statements: Sequence[Any] | None = None, *,
                    timeout: float | None = None) -> Any:
        """:meth:`tornpool.Pool.transaction` on the primary (both forms)."""
        if statements is None:
            scope: TransactionScope[PoolConnection] = self._primary.transaction(timeout=timeout)
            return scope
        return self._primary.transaction(statements, timeout=timeout)

    def session(self, timeout: float | None = None) -> RoutedSession:
        """``async with rs.session() as s:`` reads from replicas until the
        first :meth:`RoutedSession.execute`, then everything on one pinned
        primary lease (released on exit)."""
        return RoutedSession(self, timeout)

    # -- lag checks -------------------------------------------------------------------

    async def check_replicas(self) -> list[dict[str, Any]]:
        """Check every replica now (its lag, or whether it answers; a check
        already running is waited for); resolves to :meth:`replica_status`."""
        for r in self._replicas:
            r.next_check = 0.0
        tasks = self._launch_due()
        if tasks:
            await asyncio.gather(*tasks)
        return self.replica_status()

    def _launch_due(self) -> list[asyncio.Future[None]]:
        """Start a check of each replica that is due and not being checked
        (each on its own, so a slow one delays no other); returns the checks
        in flight."""
        now = _monotonic()
        running = []
        for r in self._replicas:
            if r.task is None and r.next_check <= now:
                r.task = task = asyncio.ensure_future(self._check(r))
                task.add_done_callback(partial(_checked, r))
            if r.task is not None:
                running.append(r.task)
        return running

    async def _check(self, r: _Replica) -> None:
        interval = self.lag_check_interval
        try:
            lag = await self._measure(r.pool)
        except _NotReplicating:
            r.found(False, None, "not replicating", _monotonic(), interval)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            r.failed("%s: %s" % (type(exc).__name__, exc), _monotonic(), interval)
            return
        bound = self.max_replica_lag
        now = _monotonic()
        if bound is None:
            r.found(True, lag, "", now, interval)
        elif lag is None:
            r.found(False, None, "lag unknown (replication stopped or not connected)", now, interval)
        elif lag > bound:
            r.found(False, lag, "lag %g s > %g s" % (lag, bound), now, interval)
        else:
            r.found(True, lag, "", now, interval)

    async def _measure(self, pool: Pool) -> float | None:
        timeout = self.lag_check_timeout
        if self.lag_query is not None:
            cur = await pool.execute(self.lag_query, timeout=timeout, cursor=Cursor)
            row = cur.fetchone()
            return None if row is None or row[0] is None else float(row[0])
        if self.max_replica_lag is None:
            await pool.execute("SELECT 1", timeout=timeout, cursor=Cursor)
            return None
        status = await replica_status(pool, timeout=timeout)
        if status is None:
            raise _NotReplicating()
        return replica_lag(status)

    def _start(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = asyncio.ensure_future(self._monitor())

    async def _monitor(self) -> None:
        while not self._closed:
            self._launch_due()
            await asyncio.sleep(min(self.lag_check_interval, 0.25))

    # -- lifecycle --------------------------------------------------------------------

    async def connect(self) -> ReplicaSet:
        """Open the primary pool (:meth:`tornpool.Pool.connect`), check the
        replicas once and start checking them in the background.  Resolves
        to the set.

        :raises OperationalError, NoSuitableServer: the primary pool could
            not open its connections (it is then closed).
        """
        await self._primary.connect()
        await self.check_replicas()
        if self._task is None:
            self._start()
        return self

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the checks and close every pool (see :meth:`tornpool.Pool.close`)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        checks = [r.task for r in self._replicas if r.task is not None]
        for t in [task, *checks]:
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        pools = [self._primary, *self.replicas]
        await asyncio.gather(*(p.close(timeout) for p in pools if not p.closed))

    async def __aenter__(self) -> ReplicaSet:
        return await self.connect()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        used = sum(1 for r in self._replicas if not self._why_not(r, _monotonic()))
        return "<ReplicaSet primary=%s replicas=%d/%d in use%s>" % (
            self._primary.name, used, len(self._replicas), " closed" if self._closed else "")


class RoutedSession:
    """One unit of work over a :class:`ReplicaSet` with read-your-writes:
    reads go to replicas until the first write; the first write takes a
    primary lease, and every later statement, read or write, runs on it
    until the session ends (``async with``) or :meth:`close` is called."""

    __slots__ = ("_set", "_timeout", "_lease")

    def __init__(self, replica_set: ReplicaSet, timeout: float | None) -> None:
        self._set = replica_set
        self._timeout = timeout
        self._lease: PoolConnection | None = None

    @property
    def pinned(self) -> bool:
        """True once the session holds a primary lease."""
        return self._lease is not None

    async def pin(self) -> PoolConnection:
        """The session's primary lease, taken now if it has none.

        :returns: (resolves to) the lease.
        :raises PoolTimeout, PoolClosed: see :meth:`tornpool.Pool.getconn`.
        """
        if self._lease is None:
            self._lease = await self._set.primary.getconn(self._timeout)
        return self._lease

    async def execute(self, query: str | bytes, args: Any = None, *, timeout: float | None = None,
                      cursor: type[Any] | None = None) -> Any:
        """Run a statement on the pinned primary lease (pinning it first);
        resolves to a cursor."""
        lease = await self.pin()
        return await lease.execute(query, args, timeout=timeout, cursor=cursor)

    async def read(self, query: str | bytes, args: Any = None, *, timeout: float | None = None,
                   cursor: type[Any] | None = None) -> Any:
        """Run a read: on the pinned lease once the session wrote, else as
        :meth:`ReplicaSet.read`; resolves to a cursor."""
        if self._lease is not None:
            return await self._lease.execute(query, args, timeout=timeout, cursor=cursor)
        return await self._set.read(query, args, timeout=timeout, cursor=cursor)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PoolConnection]:
        """``async with s.transaction() as conn:`` on the pinned lease: BEGIN,
        COMMIT on success, ROLLBACK on error."""
        lease = await self.pin()
        async with lease.transaction():
            yield lease

    def close(self, quiet: bool = False) -> None:
        """Give the pinned lease back (if any); the session may go on reading
        from replicas."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release(quiet=quiet)

    async def __aenter__(self) -> RoutedSession:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close(quiet=et is not None)
