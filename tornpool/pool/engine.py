"""The pool engine: who gets a connection when, for any driver.

:class:`PoolEngine` lends connections that have the small interface of
:class:`~tornpool.pool.lease.Poolable`.  It never imports a driver:
connections come from an async ``connector()`` through its
:class:`~tornpool.pool.fleet.Fleet` (which opens, counts and closes them);
what to do with a returned connection (roll back, reset the session) is the
driver pool's ``recycle`` hook.  :class:`tornpool.Pool` puts tornpool's own
connections on it; a pool over another DB-API driver reuses it unchanged.

How lending works, in short:

* requests that find no idle connection wait in a FIFO
  (:class:`~tornpool.pool.waiters.WaitQueue`, one timer for all deadlines);
* a waiter is served *synchronously* by whoever frees a connection: an
  acquire gets its lease through a Future; one of the pool's own statements
  (:meth:`tornpool.Pool.execute`) is written to the connection right there,
  in the callback that finished the previous one, without waiting for any
  task to be scheduled.  A released connection always goes to the oldest
  waiter, never back to the releasing coroutine ahead of it;
* a connection that sat idle longer than ``check_idle`` is pinged before it
  is handed out; one that comes back broken, busy or expired is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from bisect import bisect_left as _bucket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tornpool.errors import (
    PoolClosed,
    PoolTimeout,
    PoolTooManyWaiters,
    PoolUnavailable,
    WrongEventLoop,
)
from tornpool.pool import health
from tornpool.pool.events import Listeners
from tornpool.pool.fleet import Fleet
from tornpool.pool.lease import Lease, Poolable, Site, Slot, capture_site, where_acquired
from tornpool.pool.stats import BUCKETS, PoolStats
from tornpool.pool.views import EngineViews
from tornpool.pool.waiters import WaitQueue

__all__ = ["PoolEngine", "LeaseWaiter", "RETIRE", "check_sizes"]

log = logging.getLogger("tornpool.pool")

C = TypeVar("C", bound=Poolable)
_monotonic = time.monotonic
_get_ident = threading.get_ident

#: What a ``recycle`` hook returns to have a returned connection closed.
RETIRE: Any = object()

Recycle = Callable[[C, Slot[C], bool], Any]


def check_sizes(min_size: int, max_size: int) -> None:
    """:raises ValueError: sizes that make no pool."""
    if not isinstance(min_size, int) or not isinstance(max_size, int):
        raise TypeError("size and max_size must be integers")
    if min_size < 0:
        raise ValueError("size must be >= 0")
    if max_size < 1 or max_size < min_size:
        raise ValueError("max_size must be >= 1 and >= size")


class LeaseWaiter:
    """A waiter for a lease, served through ``future`` (what :meth:`PoolEngine.acquire`
    queues; a pool with its own way of waiting -- a greenlet, say -- may
    :meth:`PoolEngine.submit` one and wait on the Future its own way).
    ``site`` is where the lease was asked for (see :func:`~tornpool.pool.lease.capture_site`)."""

    __slots__ = ("engine", "future", "site", "queued_at")

    def __init__(self, engine: PoolEngine[Any], future: asyncio.Future[Any],
                 site: Site | None) -> None:
        self.engine = engine
        self.future = future
        self.site = site
        self.queued_at = 0.0

    @property
    def done(self) -> bool:
        return self.future.done()

    def deliver(self, slot: Slot[Any]) -> None:
        slot.site = self.site
        self.future.set_result(self.engine.lease_for(slot))

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class PoolEngine(EngineViews[C]):
    """The driver-independent core of a pool; see the module docstring.

    All durations are relative seconds.  The engine binds to the event loop
    on which it is first used and raises
    :class:`~tornpool.errors.WrongEventLoop` from any other.

    :param connector: ``async () -> connection``; it must fully prepare the
        connection (session set-up) or raise.
    :param lease_factory: builds the lease handed to callers.
    :param recycle: ``(conn, slot, quiet) -> None | awaitable | RETIRE``, run
        on every return of a live, idle connection: None puts it back at
        once, an awaitable puts it back when it resolves (and closes it if it
        fails), :data:`RETIRE` closes it.  ``quiet`` is True when an open
        transaction is expected (the lease's block raised).  Default: roll
        back an open transaction.
    :param reap: ``async (dead, live, kill) -> bool``: make the server drop
        the connection ``dead`` (abandoned mid-command) using ``live``, and
        tell whether it is gone (see :func:`tornpool.pool.health.reap_abandoned`).
        Without it abandoned connections stop counting at once.
    :param permanent_error: tells connect errors that retrying cannot fix
        (bad credentials, unknown database): those fail the waiters at once.
    :param capture_sites: record where each lease was acquired (a few
        frames, ~1 us) for leak and open-transaction warnings.
    :param spare: ``() -> waiter | None``, asked for a waiter when a
        connection is given back and none waits in the queue: a pool that
        takes waiters out of the queue ahead of time (:meth:`take_next`)
        hands one of those back instead of letting the connection idle.
    """

    def __init__(
        self,
        connector: Callable[[], Awaitable[C]],
        *,
        min_size: int = 1,
        max_size: int | None = None,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: float | None = 3600.0,
        lifetime_jitter: float = 0.1,
        max_idle: float | None = 600.0,
        max_uses: int = 0,
        check_idle: float | None = 0.5,
        check_timeout: float = 5.0,
        reconnect_interval: float = 0.1,
        reconnect_max_interval: float = 0.8,
        reconnect_timeout: float = 300.0,
        reconnect_failed: Callable[[Any], None] | None = None,
        fail_fast: bool = False,
        leak_threshold: float | None = None,
        recycle: Recycle[C] | None = None,
        reap: Callable[[C, C, bool], Awaitable[bool]] | None = None,
        reap_timeout: float = 2.0,
        permanent_error: Callable[[BaseException], bool] | None = None,
        lease_factory: Callable[[PoolEngine[C], Slot[C]], Lease[C]] | None = None,
        capture_sites: bool = True,
        spare: Callable[[], Any] | None = None,
        owner: Any = None,
        name: str | None = None,
    ) -> None:
        if max_size is None:
            max_size = max(min_size, 1)
        check_sizes(min_size, max_size)
        if timeout is None or timeout < 0:
            raise ValueError("timeout must be a number of seconds >= 0")
        self.name = name or "pool-%x" % id(self)
        self.timeout = timeout
        self.max_waiting = max_waiting
        self.max_idle = max_idle
        self.max_uses = max_uses
        self.check_idle = check_idle
        self.check_timeout = check_timeout
        self.reconnect_failed = reconnect_failed
        self.fail_fast = fail_fast
        self.leak_threshold = leak_threshold
        self.reap_timeout = reap_timeout
        self.capture_sites = capture_sites
        self.owner = owner if owner is not None else self
        self.backoff = health.Backoff(reconnect_interval, reconnect_max_interval, reconnect_timeout)
        self.stats = PoolStats()
        #: Lifecycle event listeners (see :mod:`tornpool.pool.events`).
        self.events = Listeners(self.name)
        self._recycle = recycle or _rollback_if_needed
        self._reap = reap
        self._permanent = permanent_error or (lambda exc: False)
        self._lease_factory: Callable[[PoolEngine[C], Slot[C]], Lease[C]] = lease_factory or Lease
        self._waiters = WaitQueue(self._timeout_error)
        self._spare = spare
        self.fleet: Fleet[C] = Fleet(
            connector,
            name=self.name,
            min_size=min_size,
            max_size=max_size,
            max_lifetime=max_lifetime,
            lifetime_jitter=lifetime_jitter,
            close_timeout=check_timeout,
            backoff=self.backoff,
            stats=self.stats,
            events=self.events,
            on_ready=self.put,
            on_failed=self._connect_failed,
            on_gone=self._notify_returned,
            demand=self._waiters.__len__,
            reaper=self._reap_slot if reap is not None else None,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._returned: asyncio.Future[None] | None = None
        self._priority: set[Any] = set()

    # -- loop binding and state ----------------------------------------------------

    def bind(self) -> asyncio.AbstractEventLoop:
        """The running loop, which the engine is (now) bound to.

        Once bound, "our loop runs, in the thread that bound us" proves the
        caller is on it, without ``asyncio.get_running_loop()`` (which costs
        a ``getpid()`` system call per request).

        :raises WrongEventLoop: the engine is bound to another loop.
        """
        loop = self._loop
        if loop is not None and self._thread == _get_ident() and loop.is_running():
            return loop
        running = asyncio.get_running_loop()
        if loop is not None:
            raise WrongEventLoop(0, "%s is bound to another event loop" % self.name)
        self._loop = self.fleet.loop = running
        self._thread = _get_ident()
        self._schedule_maintenance()
        return running

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the engine is bound to, or None before first use."""
        return self._loop

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection."""
        return self._waiters.live()

    @property
    def deadline_timer_armed(self) -> bool:
        """Whether the waiters' shared deadline timer is armed."""
        return self._waiters.timer_armed

    # -- handing out ------------------------------------------------------------------

    def submit(self, waiter: Any, timeout: float | None,
               loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Serve ``waiter`` a connection now if one is idle and nobody waits,
        else queue it (FIFO) with a deadline ``timeout`` seconds away
        (default: the pool's ``timeout``).  ``waiter.deliver(slot)`` is called
        with the slot marked in use; the waiter owns it until it calls
        :meth:`release`.  Errors (closed pool, too many waiters, deadline)
        come through ``waiter.fail(exc)``.  ``loop``: what :meth:`bind` just
        returned to the caller (saves checking twice)."""
        if loop is None:
            try:
                loop = self.bind()
            except WrongEventLoop as exc:
                waiter.fail(exc)
                return
        priority = waiter in self._priority if self._priority else False
        if self._closing and not priority:
            waiter.fail(PoolClosed(0, "%s is closed" % self.name))
            return
        stats = self.stats
        stats.requests_num += 1
        if self.fleet.idle and not self._waiters:
            slot = self.fleet.take_idle()
            if slot is not None:
                self._serve(slot, waiter)
                return
        if self.max_waiting and not priority and self._waiters.live() >= self.max_waiting:
            stats.requests_errors += 1
            waiter.fail(PoolTooManyWaiters(0, "%d requests already waiting" % self.max_waiting))
            return
        stats.requests_queued += 1
        waiter.queued_at = _monotonic()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        self._waiters.push(waiter, deadline, loop, front=priority)
        fleet = self.fleet
        if len(fleet.slots) + fleet.pending < fleet.max_size:  # else growth has nothing to do
            fleet.grow()
        if self.fail_fast and self._fail_fast_now():
            self._fail_unavailable()

    def resubmit(self, waiter: Any, deadline: float) -> None:
        """Queue again, at the front, a waiter that was served a connection
        it could not use (found dead), keeping its original deadline (loop
        time)."""
        loop = self.bind()
        if loop.time() >= deadline:
            waiter.fail(self._timeout_error())
            return
        if self._closing:
            waiter.fail(PoolClosed(0, "%s is closed" % self.name))
            return
        if not self._waiters:
            slot = self.fleet.take_idle()
            if slot is not None:
                self._serve(slot, waiter)
                return
        self._waiters.push(waiter, deadline, loop, front=True)
        self.fleet.grow()

    async def acquire(self, timeout: float | None = None, *, priority: bool = False) -> Lease[C]:
        """Take a connection out of the pool.

        :param timeout: seconds for the whole acquire (waiting, validation,
            connecting); default: the pool's ``timeout``.
        :param priority: serve ahead of every waiter, even while closing (for
            the pool's own housekeeping).
        :returns: a lease for the connection.
        :raises PoolClosed: the pool is closed or closes while waiting.
        :raises PoolTimeout: no connection before the deadline (the last
            connect error, if any, is chained).
        :raises PoolTooManyWaiters: ``max_waiting`` requests already wait.
        :raises PoolUnavailable: ``fail_fast`` and the server is unreachable.
        """
        loop = self.bind()
        site = capture_site() if self.capture_sites else None
        fut: asyncio.Future[Lease[C]] = loop.create_future()
        waiter = LeaseWaiter(self, fut, site)
        if priority:
            self._priority.add(waiter)
        try:
            self.submit(waiter, timeout)
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                fut.result().release()  # served and cancelled in the same turn
            raise
        finally:
            if priority:
                self._priority.discard(waiter)

    def is_priority(self, waiter: Any) -> bool:
        """Whether ``waiter`` is one of the pool's own (served even while closing)."""
        return waiter in self._priority

    def lease_for(self, slot: Slot[C]) -> Lease[C]:
        """A new lease on a slot just handed out."""
        lease = self._lease_factory(self, slot)
        slot.lease_ref = weakref.ref(lease)
        return lease

    def _serve(self, slot: Slot[C], waiter: Any) -> None:
        """Hand an idle connection to ``waiter``, pinging it first if it sat
        idle longer than ``check_idle``."""
        now = _monotonic()
        check = self.check_idle
        if check is not None and now - slot.last_used > check:
            health.validate_then_serve(self, slot, waiter)
        else:
            self.hand_out(slot, waiter, now)

    def hand_out(self, slot: Slot[C], waiter: Any, now: float) -> None:
        """Mark ``slot`` in use by ``waiter`` and deliver it."""
        self._count_hand_out(slot, waiter, now)
        slot.in_use = True
        waiter.deliver(slot)

    def _count_hand_out(self, slot: Slot[C], waiter: Any, now: float) -> None:
        queued = waiter.queued_at
        stats = self.stats
        if queued:
            waited = now - queued
            stats.wait_s += waited
            stats.wait.observe(waited)
            waiter.queued_at = 0.0
        else:
            stats.wait.counts[0] += 1  # observe(0.0), inlined: the usual case
        slot.uses += 1
        slot.acquired_at = now
        slot.leak_reported = False

    def _count_use_ended(self, slot: Slot[C], now: float) -> None:
        used = now - slot.acquired_at
        stats = self.stats
        stats.usage_s += used
        usage = stats.usage
        usage.counts[_bucket(BUCKETS, used)] += 1  # observe(), inlined
        usage.sum += used

    def take_next(self, slot: Slot[C], wanted: Callable[[Any], bool]) -> Any:
        """The oldest waiter, taken out of the queue if ``wanted(waiter)``
        and if ``slot``'s connection, once given back as it is, would be
        handed straight to it (the pool is not closing or shrinking, the
        connection is neither due to retire nor of an old generation).
        The caller promises to :meth:`pass_on` the slot to it, or to queue
        it again (:meth:`resubmit`); until then its deadline still applies
        (``waiter.fail`` at the deadline if it is not done).  None if there
        is no such waiter."""
        fleet = self.fleet
        if self._closing or fleet.counted > fleet.max_size or self._spent(slot, _monotonic()):
            return None
        return self._waiters.pop_if(wanted)

    def _spent(self, slot: Slot[C], now: float) -> bool:
        """Whether ``slot``'s connection retires when given back: of an old
        generation, or its lifetime or its uses are up."""
        return (slot.generation != self.fleet.generation or now >= slot.expires
                or bool(self.max_uses and slot.uses >= self.max_uses))

    def pass_on(self, slot: Slot[C], waiter: Any) -> None:
        """End the use of ``slot`` and mark it in use by ``waiter`` at once,
        counted like a release followed by a hand-out, without recycling
        (the caller knows the connection is fit) and without calling
        ``waiter.deliver``."""
        now = _monotonic()
        self._count_use_ended(slot, now)
        slot.last_used = now
        self._count_hand_out(slot, waiter, now)

    def _timeout_error(self) -> PoolTimeout:
        self.stats.requests_errors += 1  # one call per request that timed out
        error = self.backoff.last_error if self.backoff.down else None
        msg = "no connection available from %s within the timeout" % self.name
        if error is not None:
            msg += " (server unreachable: %s)" % (error,)
        exc = PoolTimeout(0, msg)
        exc.__cause__ = error
        self.stats.error(exc)
        self.events.emit("timeout", None, msg)
        return exc

    # -- giving back ------------------------------------------------------------------

    def release(self, slot: Slot[C], quiet: bool = False) -> None:
        """Take back a connection handed out by :meth:`submit` (the lease's
        :meth:`~tornpool.pool.lease.Lease.release` calls this).  Checks its
        state and recycles, closes or replaces it."""
        now = _monotonic()
        slot.in_use = False
        slot.lease_ref = None
        self._count_use_ended(slot, now)
        fleet = self.fleet
        conn = slot.conn
        if fleet.slots.get(id(conn)) is not slot:
            return  # terminated by close() meanwhile
        if conn.closed:
            self.stats.returns_bad += 1
            fleet.lost(slot)
            return
        if conn.busy:
            self.stats.returns_bad += 1
            conn.abandoned = True
            conn.terminate()
            fleet.lost(slot)
            return
        slot.last_used = now
        if self._spent(slot, now) or (self._closing and not self._waiters):
            fleet.retire(slot)
            return
        try:
            action = self._recycle(conn, slot, quiet)
        except Exception as exc:
            log.warning("%s: recycling a connection failed, closing it: %s", self.name, exc)
            fleet.retire(slot)
            return
        if action is None:
            self.put(slot)
        elif action is RETIRE:
            fleet.retire(slot)
        else:
            slot.in_use = True  # not available until the clean-up is done
            fleet.spawn(self._clean(slot, action))

    def reclaim(self, slot: Slot[C]) -> None:
        """A lease was garbage-collected without being released (called from
        its finalizer, possibly in another thread): log it and take the
        connection back on the pool's loop."""
        log.warning("%s: a connection was never released (leaked lease); acquired at:\n%s",
                    self.name, where_acquired(slot.site))
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.release, slot)

    async def _clean(self, slot: Slot[C], action: Awaitable[None]) -> None:
        try:
            await asyncio.wait_for(action, self.check_timeout)
        except BaseException as exc:
            slot.in_use = False
            log.warning("%s: cleaning a returned connection failed, closing it: %r", self.name, exc)
            self.fleet.discard(slot)
            if not isinstance(exc, Exception):
                raise
            return
        slot.in_use = False
        conn = slot.conn
        if conn.closed or conn.busy:
            self.fleet.discard(slot)
            return
        slot.last_used = _monotonic()
        self.put(slot)

    def put(self, slot: Slot[C]) -> None:
        """Hand a good connection to the oldest live waiter, else idle it."""
        fleet = self.fleet
        if fleet.counted > fleet.max_size:
            fleet.retire(slot)  # shrinking after resize()
            return
        waiter = self._waiters.pop()
        if waiter is None and self._spare is not None:
            waiter = self._spare()
        if waiter is not None:
            self.hand_out(slot, waiter, _monotonic())
        elif self._closing:
            fleet.retire(slot)
        else:
            fleet.park(slot)

    # -- connect failures and reaping ------------------------------------------------------

    def _connect_failed(self, exc: Exception, announce: bool) -> None:
        backoff = self.backoff
        was_down = backoff.down
        report = backoff.failed(exc)
        keep = self._priority.__contains__
        if self._permanent(exc):
            if announce:
                log.warning("%s: cannot connect: %s", self.name, exc)
            self.stats.requests_errors += self._waiters.fail_all(exc, keep=keep)
        elif not was_down and announce:
            log.warning("%s: cannot connect, retrying in the background: %s", self.name, exc)
        if report and self.reconnect_failed is not None:
            try:
                self.reconnect_failed(self.owner)
            except Exception:
                log.exception("%s: reconnect_failed hook raised", self.name)
        if self._fail_fast_now():
            self._fail_unavailable()

    def _fail_fast_now(self) -> bool:
        return self.fail_fast and self.backoff.down and not self.fleet.slots

    def _fail_unavailable(self) -> None:
        error = self.backoff.last_error
        exc = PoolUnavailable(0, "no database connection available (%s): %s" % (self.name, error))
        exc.__cause__ = error
        self.stats.requests_errors += self._waiters.fail_all(exc, keep=self._priority.__contains__)

    async def _reap_slot(self, slot: Slot[C]) -> None:
        assert self._reap is not None
        await health.reap_abandoned(self, slot.conn, self._reap, self.reap_timeout)

    # -- maintenance, resize, drain, close ---------------------------------------------

    def _schedule_maintenance(self) -> None:
        if self._loop is not None and not self._closing:
            interval = health.maintenance_interval(self.max_idle, self.leak_threshold)
            self._timer = self._loop.call_later(interval, self._maintain)

    def _maintain(self) -> None:
        self._timer = None
        if self._closing:
            return
        try:
            health.run_maintenance(self)
        finally:
            self._schedule_maintenance()

    def run_maintenance(self) -> None:
        """One pass of housekeeping now (it also runs about every second)."""
        health.run_maintenance(self)

    async def fill(self, announce: bool = True) -> list[BaseException]:
        """Open connections up to ``min_size`` concurrently and wait for
        them; resolves to the list of connect errors (empty on success)."""
        self.bind()
        return await self.fleet.fill(announce)

    def resize(self, min_size: int, max_size: int | None = None) -> None:
        """Change the sizes; growth and shrinking happen in the background
        (connections in use above the new cap close when given back)."""
        if max_size is None:
            max_size = max(min_size, 1)
        check_sizes(min_size, max_size)
        self.fleet.resize(min_size, max_size)

    def drain(self) -> None:
        """Replace every connection gracefully: idle ones now, ones in use
        when they come back."""
        self.fleet.drain()

    async def wait_filled(self, timeout: float | None = None) -> None:
        """Wait until ``min_size`` connections of the current generation are
        open.

        :raises PoolTimeout: not within ``timeout`` (default: the pool's).
        """
        deadline = _monotonic() + (self.timeout if timeout is None else timeout)
        while not self._closing and not self.fleet.filled:
            if _monotonic() >= deadline:
                raise self._timeout_error()
            await asyncio.sleep(0.005)

    def _notify_returned(self) -> None:
        fut = self._returned
        if fut is not None and not fut.done() and not any(
                s.in_use for s in self.fleet.slots.values()):
            fut.set_result(None)

    async def close(self, timeout: float = 5.0) -> None:
        """Close gracefully: waiters and new requests get
        :class:`~tornpool.errors.PoolClosed`, idle connections close at once,
        connections in use close when given back -- or are terminated after
        ``timeout`` seconds, with a warning naming where they were acquired.

        :raises PoolClosed: the pool was already closed.
        """
        if self._closing:
            raise PoolClosed(0, "%s is already closed" % self.name)
        self._closing = True
        fleet = self.fleet
        fleet.stop()
        if self._loop is None:
            fleet.closed = True
            return
        self.bind()
        if self._timer is not None:
            self._timer.cancel()
        self._waiters.fail_all(PoolClosed(0, "%s was closed" % self.name),
                               keep=self._priority.__contains__)
        deadline = _monotonic() + timeout
        while fleet.idle:
            fleet.retire(fleet.idle[0])
        if any(s.in_use for s in fleet.slots.values()):
            returned: asyncio.Future[None] = self._loop.create_future()
            self._returned = returned
            self._notify_returned()
            try:
                await asyncio.wait_for(asyncio.shield(returned), max(deadline - _monotonic(), 0.0))
            except asyncio.TimeoutError:
                self._report_held()
        # let reapers and closers finish, then cut what is left
        while fleet.tasks and _monotonic() < deadline:
            await asyncio.wait(list(fleet.tasks), timeout=max(deadline - _monotonic(), 0.0))
        fleet.closed = True
        for task in list(fleet.tasks):
            task.cancel()
        if fleet.tasks:
            await asyncio.wait(list(fleet.tasks), timeout=1.0)
        cut = fleet.cut()
        for slot in cut:
            lease = slot.lease
            if lease is not None:
                lease.detach()
        if cut:
            await asyncio.sleep(0)  # let the transports finish closing

    def _report_held(self) -> None:
        now = _monotonic()
        held = [s for s in self.fleet.slots.values() if s.in_use]
        parts = ["held for %.1f s, acquired at:\n%s" % (now - s.acquired_at, where_acquired(s.site))
                 for s in held]
        log.warning("%s: close() gave up waiting for %d connection(s) still in use; "
                    "terminating them:\n%s", self.name, len(held), "\n".join(parts))


def _rollback_if_needed(conn: Any, slot: Slot[Any], quiet: bool) -> Any:
    """Default recycle: close a connection with a result left unread, roll
    back a transaction left open."""
    if conn.has_unread_result:
        return RETIRE
    if conn.in_transaction:
        return conn.rollback(timeout=5.0)
    return None
