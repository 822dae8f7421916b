"""Driver-independent pool policy: waiters, growth, health, release rules.

:class:`PoolPolicy` manages any object that has the small connection
interface described by :class:`Poolable` (``closed``, ``busy``,
``in_transaction``, ``has_unread_result``, ``ping``, ``rollback``, ``close``,
``terminate``).  It never imports a driver: connections come from an async
``connector()`` callable.  :class:`tornpool.pool.Pool` puts tornpool's own
connections and the Momoko conveniences on top of it; a pool over another
DB-API driver can reuse it unchanged.

How it works, in short:

* idle connections sit in a deque (most recently used on the right, handed
  out first); waiters are bare Futures in a FIFO deque.  The fast path of
  :meth:`PoolPolicy.acquire` creates no Task, takes no lock and allocates
  one lease object;
* waiters' deadlines share one loop timer, armed for the earliest of them
  (a heap), instead of a timer per waiter;
* a released connection goes to the oldest waiter that is still waiting,
  never back to the releasing coroutine ahead of them;
* growth happens in background tasks, each opening one connection, only
  while waiters outnumber the connects in flight and the cap allows it.
  The cap counts connections being opened, in use, idle, being closed and
  abandoned mid-command (until they are reaped), so the server never sees
  more than ``max_size`` of ours;
* while the server is unreachable a single reconnect attempt runs at a time,
  with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import random
import time
import traceback
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Generic,
    List,
    Optional,
    Protocol,
    Set,
    Tuple,
    TypeVar,
)

from .errors import (
    ConnectionReleased,
    ForeignConnection,
    OperationalError,
    PoolClosed,
    PoolError,
    PoolTimeout,
    PoolTooManyWaiters,
    WrongEventLoop,
)

from . import _pool_admin as _admin
from ._pool_base import (
    STATS_KEYS,
    C,
    Lease,
    Poolable,
    PoolUnavailable,
    _check_sizes,
    _Slot,
    render_prometheus,
)

__all__ = ["Poolable", "PoolPolicy", "Lease", "PoolUnavailable", "STATS_KEYS", "render_prometheus"]

log = logging.getLogger("tornpool.pool")

_monotonic = time.monotonic


class PoolPolicy(Generic[C]):
    """The pool's policy core; see the module docstring.

    All durations are relative seconds.  The object binds to the event loop
    on which it is first used and raises
    :class:`~tornpool.errors.WrongEventLoop` from any other.

    :param connector: ``async () -> connection``; it must fully prepare the
        connection (session set-up) or raise.
    :param lease_factory: builds the lease handed to callers (defaults to
        :class:`Lease`).
    :param reap: ``async (dead, live) -> None``: make the server drop the
        connection ``dead`` (abandoned mid-command) using the live connection
        ``live``.  Without it abandoned connections stop counting at once.
    :param reset: ``async (conn) -> None`` run on every return.
    :param permanent_error: tells connect errors that retrying cannot fix
        (bad credentials, unknown database): those fail the waiters at once.
    """

    def __init__(
        self,
        connector: Callable[[], Awaitable[C]],
        *,
        min_size: int = 1,
        max_size: Optional[int] = None,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: Optional[float] = 3600.0,
        lifetime_jitter: float = 0.1,
        max_idle: Optional[float] = 600.0,
        max_uses: int = 0,
        check_idle: float = 0.5,
        check_timeout: float = 5.0,
        reconnect_interval: float = 0.1,
        reconnect_max_interval: float = 0.8,
        reconnect_timeout: float = 300.0,
        reconnect_failed: Optional[Callable[[Any], None]] = None,
        fail_fast: bool = False,
        leak_threshold: Optional[float] = None,
        reset: Optional[Callable[[C], Awaitable[None]]] = None,
        reap: Optional[Callable[[C, C], Awaitable[None]]] = None,
        reap_timeout: float = 2.0,
        permanent_error: Optional[Callable[[BaseException], bool]] = None,
        lease_factory: Optional[Callable[["PoolPolicy[C]", _Slot[C]], Lease[C]]] = None,
        owner: Any = None,
        name: Optional[str] = None,
    ) -> None:
        if max_size is None:
            max_size = min_size
        _check_sizes(min_size, max_size)
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0")
        self._connector = connector
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.max_waiting = max_waiting
        self.max_lifetime = max_lifetime
        self.lifetime_jitter = lifetime_jitter
        self.max_idle = max_idle
        self.max_uses = max_uses
        self.check_idle = check_idle
        self.check_timeout = check_timeout
        #: Seconds a closed connection keeps counting against ``max_size``.
        self.close_linger = 0.05
        self.reconnect_interval = reconnect_interval
        self.reconnect_max_interval = max(reconnect_max_interval, reconnect_interval)
        self.reconnect_timeout = reconnect_timeout
        self.reconnect_failed = reconnect_failed
        self.fail_fast = fail_fast
        self.leak_threshold = leak_threshold
        self._reset = reset
        self._reap = reap
        self.reap_timeout = reap_timeout
        self._permanent = permanent_error or (lambda exc: False)
        self._lease_factory: Callable[[PoolPolicy[C], _Slot[C]], Lease[C]] = lease_factory or Lease
        self.owner = owner if owner is not None else self
        self.name = name or "pool-%x" % id(self)

        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._idle: Deque[_Slot[C]] = collections.deque()
        self._waiters: Deque["asyncio.Future[_Slot[C]]"] = collections.deque()
        self._priority: Set["asyncio.Future[_Slot[C]]"] = set()
        # (loop time, id, waiter) for every waiter that may still time out;
        # entries of served waiters are dropped lazily.  One timer, _wake,
        # is armed for the earliest (see _arm_deadline).
        self._deadlines: List[Tuple[float, int, "asyncio.Future[_Slot[C]]"]] = []
        self._wake: Optional[asyncio.TimerHandle] = None
        self._wake_at = float("inf")
        self._slots: Dict[int, _Slot[C]] = {}  # id(conn) -> slot, every counted connection
        self._nconns = 0          # counted connections (open, in use, closing, abandoned)
        self._pending = 0         # connects in flight
        self._generation = 0
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._closing = False
        self._closed = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._retry: Optional[asyncio.TimerHandle] = None
        self._returned: Optional["asyncio.Future[None]"] = None
        # server-down state
        self._down_since: Optional[float] = None
        self._next_attempt = 0.0
        self._backoff = reconnect_interval
        self._failed_reported = False
        self.last_connect_error: Optional[BaseException] = None
        # stats
        self._st: Dict[str, int] = dict.fromkeys(
            ("requests_num", "requests_queued", "requests_errors", "returns_bad",
             "connections_num", "connections_errors", "connections_lost"), 0)
        self._wait_s = 0.0
        self._usage_s = 0.0
        self._connect_s = 0.0

    # -- loop binding -----------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None:
                raise WrongEventLoop("%s is bound to another event loop" % self.name)
            self._loop = loop
            self._schedule_maintenance()
        return loop

    @property
    def loop(self) -> Optional[asyncio.AbstractEventLoop]:
        """The event loop the pool is bound to, or None before first use."""
        return self._loop

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    # -- acquire ------------------------------------------------------------------

    async def acquire(self, timeout: Optional[float] = None) -> Lease[C]:
        """Take a connection out of the pool.

        :param timeout: seconds for the whole acquire (waiting, validation,
            connecting); default: the pool's ``timeout``.
        :returns: a :class:`Lease` for the connection.
        :raises PoolClosed: the pool is closed or closes while waiting.
        :raises PoolTimeout: no connection before the deadline (the last
            connect error, if any, is chained).
        :raises PoolTooManyWaiters: ``max_waiting`` requests already wait.
        :raises PoolUnavailable: ``fail_fast`` and the server is unreachable.
        """
        # Fast path, inlined: a fresh idle connection and nobody waiting.
        idle = self._idle
        if idle and not self._waiters and not self._closing and (
                asyncio.get_running_loop() is self._loop):
            slot = idle[-1]
            now = _monotonic()
            if now - slot.last_used <= self.check_idle and now < slot.expires \
                    and not slot.conn.closed:
                idle.pop()
                self._st["requests_num"] += 1
                return self._hand_out(slot, now)
        slot = await self._acquire_slot(timeout, False)
        return self._hand_out(slot, _monotonic())

    def _hand_out(self, slot: _Slot[C], now: float) -> Lease[C]:
        lease = self._lease_factory(self, slot)
        slot.lease = lease
        slot.uses += 1
        slot.acquired_at = now
        if self.leak_threshold is not None:
            slot.acquired_stack = "".join(traceback.format_stack(limit=12)[:-3])
            slot.leak_reported = False
        return lease

    async def _acquire_slot(self, timeout: Optional[float], priority: bool) -> _Slot[C]:
        loop = self._bind()
        if self._closing and not priority:
            raise PoolClosed("%s is closed" % self.name)
        st = self._st
        st["requests_num"] += 1
        now = _monotonic()
        if timeout is None:
            timeout = self.timeout
        deadline = now + timeout
        # Fast path: an idle connection and nobody ahead of us.
        idle = self._idle
        while idle and not self._waiters:
            slot = idle.pop()
            if slot.conn.closed:
                self._lost(slot)
                continue
            if now >= slot.expires:
                self._retire(slot)
                continue
            if now - slot.last_used > self.check_idle:
                if not await self._validate(slot, deadline):
                    now = _monotonic()
                    continue
                if self._closing and not priority:
                    self._retire(slot)
                    raise PoolClosed("%s is closed" % self.name)
            return slot
        return await self._wait(loop, deadline, now, priority)

    async def _validate(self, slot: _Slot[C], deadline: float) -> bool:
        """Ping a connection that sat idle; False (and discarded) if dead."""
        remaining = min(deadline - _monotonic(), self.check_timeout)
        if remaining <= 0:
            remaining = 0.001
        try:
            await slot.conn.ping(timeout=remaining)
        except asyncio.CancelledError:
            slot.abandoned = True  # the ping was sent: the server may still be on it
            self._discard(slot)
            raise
        except Exception as exc:
            self._st["connections_lost"] += 1
            if isinstance(exc, TimeoutError):
                slot.abandoned = True
            self._discard(slot)
            return False
        slot.last_used = _monotonic()
        return True

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float,
                    started: float, priority: bool) -> _Slot[C]:
        st = self._st
        if not priority and self.max_waiting and len(self._waiters) >= self.max_waiting:
            st["requests_errors"] += 1
            raise PoolTooManyWaiters("%d requests already waiting" % len(self._waiters))
        st["requests_queued"] += 1
        first = True
        try:
            while True:
                fut: asyncio.Future[_Slot[C]] = loop.create_future()
                if priority:
                    self._priority.add(fut)
                    self._waiters.appendleft(fut)
                elif first:
                    self._waiters.append(fut)
                else:
                    # we were already served once (a dead connection): keep our place
                    self._waiters.appendleft(fut)
                first = False
                self._maybe_grow()
                if self._fail_fast_now():
                    self._fail_waiters_unavailable()
                self._arm_deadline(loop, fut, loop.time() + max(deadline - _monotonic(), 0.0))
                try:
                    slot = await fut
                except BaseException:
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        # Served and cancelled in the same loop turn: give it on.
                        self._put(fut.result())
                    else:
                        try:
                            self._waiters.remove(fut)
                        except ValueError:
                            pass
                    raise
                finally:
                    if priority:
                        self._priority.discard(fut)
                if slot.conn.closed:
                    self._lost(slot)
                    if _monotonic() >= deadline:
                        raise self._timeout_error()
                    continue
                return slot
        except (PoolTimeout, PoolTooManyWaiters, PoolUnavailable):
            st["requests_errors"] += 1
            raise
        finally:
            self._wait_s += _monotonic() - started

    def _arm_deadline(self, loop: asyncio.AbstractEventLoop,
                      fut: "asyncio.Future[_Slot[C]]", when: float) -> None:
        """Make ``fut`` fail with :class:`PoolTimeout` at loop time ``when``
        unless it is done by then.  A timer per waiter would cost a
        ``call_at`` and a ``cancel`` per acquire; one timer armed for the
        earliest deadline costs a heap push."""
        heap = self._deadlines
        while heap and heap[0][2].done():
            heapq.heappop(heap)  # served or cancelled meanwhile
        heapq.heappush(heap, (when, id(fut), fut))
        if when < self._wake_at:
            self._rearm_wake()

    def _rearm_wake(self) -> None:
        """Point the deadline timer at the earliest waiter still waiting
        (none: no timer)."""
        if self._wake is not None:
            self._wake.cancel()
        self._wake = None
        self._wake_at = float("inf")
        heap = self._deadlines
        while heap and heap[0][2].done():
            heapq.heappop(heap)
        if heap and self._loop is not None:
            self._wake_at = heap[0][0]
            self._wake = self._loop.call_at(self._wake_at, self._expire_due)

    def _expire_due(self) -> None:
        """The deadline timer: fail the waiters whose deadline has come,
        then re-arm for the next one."""
        self._wake = None
        loop = self._loop
        assert loop is not None
        # asyncio runs a timer up to its clock resolution early
        now = loop.time() + 1e-6
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            fut = heapq.heappop(heap)[2]
            if not fut.done():
                fut.set_exception(self._timeout_error())
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
        self._rearm_wake()

    def _timeout_error(self) -> PoolTimeout:
        err = self.last_connect_error if self._down_since is not None else None
        msg = "no connection available from %s within the timeout" % self.name
        if err is not None:
            msg += " (server unreachable: %s)" % (err,)
        exc = PoolTimeout(msg)
        exc.__cause__ = err
        return exc

    # -- release ------------------------------------------------------------------

    def release(self, lease: Lease[C]) -> None:
        """Give a lease back (same as ``lease.release()``).

        :raises ForeignConnection: the lease belongs to another pool.
        :raises ConnectionReleased: the lease was already given back.
        """
        if not isinstance(lease, Lease):
            raise ForeignConnection("not a connection handed out by a pool")
        if lease._slot is None:
            raise ConnectionReleased("this connection was already released")
        if lease._policy is not self:
            raise ForeignConnection("this connection belongs to another pool")
        lease.release()

    def _release(self, slot: _Slot[C]) -> None:
        now = _monotonic()
        slot.lease = None
        self._usage_s += now - slot.acquired_at
        slot.acquired_stack = None
        conn = slot.conn
        if self._slots.get(id(conn)) is not slot:
            return  # already terminated by close()
        if conn.closed:
            self._st["returns_bad"] += 1
            self._lost(slot)
            return
        if conn.busy or conn.has_unread_result:
            self._st["returns_bad"] += 1
            slot.abandoned = slot.abandoned or conn.busy
            conn.terminate()
            self._lost(slot)
            return
        slot.last_used = now
        if self._closing and not self._waiters:
            self._retire(slot)
            return
        if (slot.generation != self._generation or now >= slot.expires
                or (self.max_uses and slot.uses >= self.max_uses)):
            self._retire(slot)
            return
        if conn.in_transaction or self._reset is not None:
            if conn.in_transaction:
                self._st["returns_bad"] += 1
            self._spawn(self._clean(slot))
            return
        self._put(slot)

    async def _clean(self, slot: _Slot[C]) -> None:
        conn = slot.conn
        try:
            if conn.in_transaction:
                await conn.rollback(timeout=self.check_timeout)
            if self._reset is not None:
                await self._reset(conn)
            if conn.closed or conn.busy or conn.in_transaction:
                raise OperationalError("connection not clean after reset")
        except BaseException:
            self._discard(slot)
            raise
        slot.last_used = _monotonic()
        if self._closing and not self._waiters:
            self._retire(slot)
        else:
            self._put(slot)

    def _put(self, slot: _Slot[C]) -> None:
        """Hand a good connection to the oldest live waiter, else idle it."""
        if self._nconns > self.max_size:
            self._retire(slot)  # shrinking after resize()
            return
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(slot)
                return
        if self._closing:
            self._retire(slot)
            return
        self._idle.append(slot)

    # -- connection lifecycle --------------------------------------------------------

    def _lost(self, slot: _Slot[C]) -> None:
        """A connection found closed or broken: forget it (or reap it)."""
        self._st["connections_lost"] += 1
        self._discard(slot)

    def _discard(self, slot: _Slot[C]) -> None:
        conn = slot.conn
        if self._slots.get(id(conn)) is not slot:
            return
        if not conn.closed:
            conn.terminate()
        if slot.abandoned and self._reap is not None and not self._closed:
            # keep it counted until the server has dropped it
            self._spawn(self._reap_one(slot))
            return
        self._forget_later(slot)

    def _forget_later(self, slot: _Slot[C]) -> None:
        """Stop counting a connection we just closed, after ``close_linger``.

        The server drops its side a moment after ours closes; a replacement
        opened at once (a connect takes ~5 ms) could briefly make the server
        see ``max_size + 1`` connections."""
        if self._closing or self.close_linger <= 0 or self._loop is None:
            self._forget(slot)
        else:
            self._loop.call_later(self.close_linger, self._forget, slot)

    def _forget(self, slot: _Slot[C]) -> None:
        if self._slots.pop(id(slot.conn), None) is None:
            return
        self._nconns -= 1
        self._notify_returned()
        self._maybe_grow()

    def _retire(self, slot: _Slot[C]) -> None:
        """Close gracefully in the background; counted until closed."""
        if self._slots.get(id(slot.conn)) is not slot:
            return
        self._spawn(self._close_slot(slot))

    async def _close_slot(self, slot: _Slot[C]) -> None:
        try:
            await asyncio.wait_for(slot.conn.close(), self.check_timeout)
        except BaseException:
            slot.conn.terminate()
        finally:
            self._forget_later(slot)

    async def _reap_one(self, slot: _Slot[C]) -> None:
        assert self._reap is not None
        try:
            live = await self._acquire_slot(self.reap_timeout, True)
        except Exception:
            self._forget(slot)
            return
        lease = self._hand_out(live, _monotonic())
        try:
            await self._reap(slot.conn, live.conn)
        except Exception as exc:  # best effort
            log.debug("%s: reaping an abandoned connection failed: %s", self.name, exc)
        finally:
            lease.release()
            self._forget(slot)

    def _spawn(self, coro: Awaitable[Any]) -> "asyncio.Future[Any]":
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, Exception):
                log.debug("%s: background task ended: %r", self.name, exc)

    # -- growth and reconnect -------------------------------------------------------

    def _maybe_grow(self) -> None:
        if self._closing or self._loop is None:
            return
        total = self._nconns + self._pending
        if total >= self.max_size:
            return
        if self._down_since is not None:
            # server down: at most one attempt at a time, paced by backoff
            if self._pending == 0 and self._retry is None and (
                    self._waiters or total < self.min_size):
                delay = max(self._next_attempt - _monotonic(), 0.0)
                self._retry = self._loop.call_later(delay, self._retry_now)
            return
        nwait = len(self._waiters)  # reapers count too: zombies already hold their place
        # Each background connect opens exactly one connection; another is
        # started only while waiters outnumber the connects in flight (or the
        # pool is below min_size), never beyond the cap.
        while total < self.max_size and (total < self.min_size or nwait > self._pending):
            self._pending += 1
            total += 1
            self._spawn(self._connect_one())

    def _retry_now(self) -> None:
        self._retry = None
        if self._closing:
            return
        if self._pending == 0 and self._nconns < self.max_size and (
                self._waiters or self._nconns < self.min_size):
            self._pending += 1
            self._spawn(self._connect_one())

    async def fill(self) -> List[BaseException]:
        """Open connections up to ``min_size`` concurrently and wait for
        them; resolves to the list of connect errors (empty on success)."""
        self._bind()
        tasks = []
        for _ in range(self.min_size - self._nconns - self._pending):
            self._pending += 1
            tasks.append(self._spawn(self._connect_one()))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException)]

    async def _connect_one(self) -> Optional[BaseException]:
        st = self._st
        st["connections_num"] += 1
        t0 = _monotonic()
        try:
            conn = await self._connector()
        except asyncio.CancelledError:
            self._pending -= 1
            raise
        except Exception as exc:
            self._pending -= 1
            self._connect_s += _monotonic() - t0
            st["connections_errors"] += 1
            self._connect_failed(exc)
            return exc
        self._pending -= 1
        now = _monotonic()
        self._connect_s += now - t0
        if self._closing and not self._waiters:
            conn.terminate()
            return None
        self._connect_ok()
        life = self.max_lifetime
        expires = now + life * (1.0 - self.lifetime_jitter * random.random()) if life else float("inf")
        slot = _Slot(conn, now, expires, self._generation)
        self._slots[id(conn)] = slot
        self._nconns += 1
        self._put(slot)
        self._maybe_grow()
        return None

    def _connect_ok(self) -> None:
        if self._down_since is not None:
            log.info("%s: server reachable again", self.name)
        self._down_since = None
        self._backoff = self.reconnect_interval
        self._failed_reported = False
        self.last_connect_error = None

    def _connect_failed(self, exc: Exception) -> None:
        now = _monotonic()
        self.last_connect_error = exc
        if self._permanent(exc):
            log.warning("%s: cannot connect: %s", self.name, exc)
            self._fail_waiters(exc)
        if self._down_since is None:
            self._down_since = now
            log.warning("%s: cannot connect, retrying in the background: %s", self.name, exc)
        delay = self._backoff * (0.75 + 0.5 * random.random())
        self._backoff = min(self._backoff * 2, self.reconnect_max_interval)
        self._next_attempt = now + delay
        if (not self._failed_reported and self.reconnect_failed is not None
                and now - self._down_since >= self.reconnect_timeout):
            self._failed_reported = True
            try:
                self.reconnect_failed(self.owner)
            except Exception:
                log.exception("%s: reconnect_failed hook raised", self.name)
        if self._fail_fast_now():
            self._fail_waiters_unavailable()
        self._maybe_grow()

    def _fail_fast_now(self) -> bool:
        return (self.fail_fast and self._down_since is not None
                and self._nconns == 0 and not self._idle)

    def _fail_waiters_unavailable(self) -> None:
        exc = PoolUnavailable("no database connection available (%s): %s"
                              % (self.name, self.last_connect_error))
        exc.__cause__ = self.last_connect_error
        self._fail_waiters(exc)

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters = self._waiters
        keep = [f for f in waiters if f in self._priority]
        for fut in list(waiters):
            if fut not in self._priority and not fut.done():
                fut.set_exception(exc)
        waiters.clear()
        waiters.extend(keep)
        # forget their deadlines; stop the timer if nobody is left to time out
        heap = self._deadlines
        heap[:] = [entry for entry in heap if not entry[2].done()]
        heapq.heapify(heap)
        self._rearm_wake()

    # -- housekeeping (implemented in _pool_admin) ----------------------------------

    _maintenance_interval = _admin._maintenance_interval
    _schedule_maintenance = _admin._schedule_maintenance
    _maintain = _admin._maintain
    run_maintenance = _admin.run_maintenance
    resize = _admin.resize
    drain = _admin.drain
    _notify_returned = _admin._notify_returned
    wait_filled = _admin.wait_filled
    close = _admin.close
    stats = _admin.stats
    leased = _admin.leased
