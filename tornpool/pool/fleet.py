"""The connections one pool owns: opening them (growth, reconnect backoff),
counting them against the cap, closing and reaping them.

:class:`Fleet` is the supply side of :class:`~tornpool.pool.engine.PoolEngine`:
the engine asks it for connections and gives them back; the fleet decides
when to open one, keeps the idle ones, and counts every connection that may
still exist on the server -- being opened, in use, idle, being closed, or
abandoned mid-command until it has been reaped -- so that the server never
sees more than ``max_size`` of ours.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from tornpool.pool.events import Listeners
from tornpool.pool.health import Backoff
from tornpool.pool.lease import Poolable, Slot
from tornpool.pool.stats import PoolStats

__all__ = ["Fleet"]

log = logging.getLogger("tornpool.pool")

C = TypeVar("C", bound=Poolable)
_monotonic = time.monotonic


class Fleet(Generic[C]):
    """The pool's connections; see the module docstring.

    :param connector: ``async () -> connection``, fully prepared.
    :param on_ready: called with the slot of each new connection (the engine
        hands it to a waiter or parks it).
    :param on_failed: called with each connect error and whether it should
        be logged (the engine fails waiters on permanent errors).
    :param on_gone: called after a connection stopped being counted.
    :param demand: how many requests wait for a connection now.
    :param reaper: ``async (slot) -> None``: return once the server dropped
        an abandoned connection (None: stop counting it at once).
    """

    def __init__(
        self,
        connector: Callable[[], Awaitable[C]],
        *,
        name: str,
        min_size: int,
        max_size: int,
        max_lifetime: float | None,
        lifetime_jitter: float,
        close_timeout: float,
        backoff: Backoff,
        stats: PoolStats,
        events: Listeners,
        on_ready: Callable[[Slot[C]], None],
        on_failed: Callable[[Exception, bool], None],
        on_gone: Callable[[], None],
        demand: Callable[[], int],
        reaper: Callable[[Slot[C]], Awaitable[None]] | None,
    ) -> None:
        self._connector = connector
        self.name = name
        self.min_size = min_size
        self.max_size = max_size
        self.max_lifetime = max_lifetime
        self.lifetime_jitter = lifetime_jitter
        self.close_timeout = close_timeout
        #: Seconds a closed connection keeps counting against ``max_size``
        #: (the server drops its side a moment after ours closes).
        self.close_linger = 0.05
        self.backoff = backoff
        self.stats = stats
        self.events = events
        self._on_ready = on_ready
        self._on_failed = on_failed
        self._on_gone = on_gone
        self._demand = demand
        self._reaper = reaper
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Every counted connection, by ``id(conn)``.
        self.slots: dict[int, Slot[C]] = {}
        #: Idle connections, most recently used on the right.
        self.idle: collections.deque[Slot[C]] = collections.deque()
        #: Connects in flight.
        self.pending = 0
        #: Connections of older generations are replaced when they come back.
        self.generation = 0
        self.tasks: set[asyncio.Future[Any]] = set()
        #: No more connections are opened; closed ones stop counting at once.
        self.closing = False
        #: Reapers and closers have been cut off too.
        self.closed = False
        self._retry: asyncio.TimerHandle | None = None

    # -- counting --------------------------------------------------------------------

    @property
    def counted(self) -> int:
        """Connections counted against ``max_size``, connects in flight aside."""
        return len(self.slots)

    @property
    def reaping(self) -> int:
        """Connections closed mid-command, counted until the server dropped them."""
        return sum(1 for s in self.slots.values() if s.reaping)

    def owns(self, slot: Slot[C]) -> bool:
        """Whether ``slot`` is still one of the counted connections."""
        return self.slots.get(id(slot.conn)) is slot

    def find(self, conn: Any) -> Slot[C] | None:
        """The slot of ``conn``, if it is counted."""
        slot = self.slots.get(id(conn))
        return slot if slot is not None and slot.conn is conn else None

    # -- idle connections ------------------------------------------------------------

    def take_idle(self) -> Slot[C] | None:
        """The most recently used idle connection that is still open and not
        expired (dead and expired ones found on the way are dropped)."""
        idle = self.idle
        now = _monotonic()
        while idle:
            slot = idle.pop()
            if slot.conn.closed:
                self.lost(slot)
            elif now >= slot.expires:
                self.retire(slot)
            else:
                return slot
        return None

    def park(self, slot: Slot[C]) -> None:
        """Keep ``slot`` as an idle connection."""
        self.idle.append(slot)

    def _unpark(self, slot: Slot[C]) -> None:
        try:
            self.idle.remove(slot)
        except ValueError:
            pass

    # -- closing ---------------------------------------------------------------------

    def lost(self, slot: Slot[C]) -> None:
        """A connection found closed or broken: forget it (or reap it)."""
        self.stats.connections_lost += 1
        if self.events and self.owns(slot):
            self.events.emit("lost", _thread_id(slot.conn), "found closed or broken")
        self.discard(slot)

    def discard(self, slot: Slot[C]) -> None:
        """Close a connection at once; stop counting it once the server has
        let go of it."""
        if not self.owns(slot):
            return
        self._unpark(slot)
        conn = slot.conn
        if not conn.closed:
            conn.terminate()
        if conn.abandoned and self._reaper is not None and not self.closed and not slot.reaping:
            slot.reaping = True
            self.spawn(self._reap(slot))
            return
        self._forget_later(slot)

    def retire(self, slot: Slot[C]) -> None:
        """Close gracefully in the background; counted until closed."""
        if not self.owns(slot):
            return
        self._unpark(slot)
        slot.closing = True
        self.spawn(self._close(slot))

    async def _close(self, slot: Slot[C]) -> None:
        try:
            await asyncio.wait_for(slot.conn.close(), self.close_timeout)
        except BaseException:
            slot.conn.terminate()
        finally:
            self.events.emit("closed", _thread_id(slot.conn), "retired")
            self._forget_later(slot)

    async def _reap(self, slot: Slot[C]) -> None:
        assert self._reaper is not None
        try:
            await self._reaper(slot)
        finally:
            self.events.emit("reaped", _thread_id(slot.conn), "closed mid-command; dropped by the server")
            self._forget(slot)

    def _forget_later(self, slot: Slot[C]) -> None:
        if self.closing or self.close_linger <= 0 or self.loop is None:
            self._forget(slot)
        else:
            self.loop.call_later(self.close_linger, self._forget, slot)

    def _forget(self, slot: Slot[C]) -> None:
        if self.slots.pop(id(slot.conn), None) is None:
            return
        self._on_gone()
        self.grow()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``coro`` as a background task the pool's close waits for."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                log.debug("%s: background task ended: %r", self.name, exc)

    def stop(self) -> None:
        """No more connections: stop growing and retrying."""
        self.closing = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def cut(self) -> list[Slot[C]]:
        """Terminate every connection still counted and forget them all;
        returns their slots."""
        self.closed = True
        cut = list(self.slots.values())
        for slot in cut:
            slot.conn.terminate()
        self.slots.clear()
        self.idle.clear()
        return cut

    # -- sizes ----------------------------------------------------------------------

    def resize(self, min_size: int, max_size: int) -> None:
        """New sizes: idle connections beyond ``min_size`` close now, the
        rest follows as connections come back."""
        self.min_size, self.max_size = min_size, max_size
        excess = len(self.slots) - min_size
        while excess > 0 and self.idle:
            self.retire(self.idle[0])
            excess -= 1
        self.grow()

    def drain(self) -> None:
        """A new generation: idle connections close now, the others when
        they come back; new ones are opened as needed."""
        self.generation += 1
        while self.idle:
            self.retire(self.idle[0])
        self.grow()

    @property
    def filled(self) -> bool:
        """``min_size`` connections of the current generation are open."""
        return sum(1 for s in self.slots.values()
                   if s.generation == self.generation and not s.reaping) >= self.min_size

    # -- opening ---------------------------------------------------------------------

    def grow(self) -> None:
        """Open connections in the background as the rules allow: each task
        opens one; another is started only while waiters outnumber the
        connects in flight (or the pool is below ``min_size``), never beyond
        the cap; while the server is down, one attempt at a time, paced by
        the backoff."""
        if self.closing or self.loop is None:
            return
        total = len(self.slots) + self.pending
        if total >= self.max_size:
            return
        waiting = self._demand()
        if self.backoff.down:
            if self.pending == 0 and self._retry is None and (waiting or total < self.min_size):
                self._retry = self.loop.call_later(self.backoff.wait(), self._retry_now)
            return
        while total < self.max_size and (total < self.min_size or waiting > self.pending):
            self.pending += 1
            total += 1
            self.spawn(self._connect_one())

    def _retry_now(self) -> None:
        # Scheduled because a request or min_size wanted a connection; try
        # even if that request is gone by now (with fail_fast it failed at
        # once), or a pool with size=0 would never find the server again.
        self._retry = None
        if self.closing:
            return
        if self.pending == 0 and len(self.slots) < self.max_size:
            self.pending += 1
            self.spawn(self._connect_one())

    async def fill(self, announce: bool = True) -> list[BaseException]:
        """Open connections up to ``min_size`` concurrently and wait for
        them; resolves to the connect errors (empty on success).  With
        ``announce=False`` failures are not logged (the caller raises them)."""
        tasks = []
        for _ in range(self.min_size - len(self.slots) - self.pending):
            self.pending += 1
            tasks.append(self.spawn(self._connect_one(announce)))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [r for r in results if isinstance(r, BaseException)]

    async def _connect_one(self, announce: bool = True) -> BaseException | None:
        stats = self.stats
        stats.connections_num += 1
        t0 = _monotonic()
        try:
            conn = await self._connector()
        except asyncio.CancelledError:
            self.pending -= 1
            raise
        except Exception as exc:
            self.pending -= 1
            stats.connect_s += _monotonic() - t0
            stats.connections_errors += 1
            self.events.emit("connect_failed", None, str(exc))
            self._on_failed(exc, announce)
            self.grow()
            return exc
        self.pending -= 1
        now = _monotonic()
        stats.connect_s += now - t0
        if self.closing and not self._demand():
            conn.terminate()
            return None
        if self.backoff.succeeded():
            log.info("%s: server reachable again", self.name)
        life = self.max_lifetime
        expires = now + life * (1.0 - self.lifetime_jitter * random.random()) if life else float("inf")
        slot = Slot(conn, now, expires, self.generation)
        self.slots[id(conn)] = slot
        self.events.emit("connect", _thread_id(conn))
        self._on_ready(slot)
        self.grow()
        return None


def _thread_id(conn: Any) -> int | None:
    """The server's id of ``conn``, if its driver tells (tornpool's does)."""
    try:
        tid = conn.thread_id
    except Exception:  # noqa: BLE001 - any driver
        return None
    return tid if isinstance(tid, int) else None
