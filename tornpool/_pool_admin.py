"""Housekeeping half of :class:`tornpool._policy.PoolPolicy`: periodic
maintenance, resize, drain, close and stats (functions taking the policy as
``self``; :class:`PoolPolicy` exposes them as methods)."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional

from ._pool_base import STATS_KEYS, Lease, _check_sizes, _Slot
from .errors import PoolClosed

if TYPE_CHECKING:  # pragma: no cover
    from ._policy import PoolPolicy

log = logging.getLogger("tornpool.pool")

_monotonic = time.monotonic


# -- maintenance ---------------------------------------------------------------

def _maintenance_interval(self: "PoolPolicy[Any]") -> float:
    iv = 1.0
    for v in (self.max_idle, self.leak_threshold):
        if v:
            iv = min(iv, v / 2)
    return max(iv, 0.05)

def _schedule_maintenance(self: "PoolPolicy[Any]") -> None:
    if self._loop is not None and not self._closing:
        self._timer = self._loop.call_later(self._maintenance_interval(), self._maintain)

def _maintain(self: "PoolPolicy[Any]") -> None:
    self._timer = None
    if self._closing:
        return
    try:
        self.run_maintenance()
    finally:
        self._schedule_maintenance()

def run_maintenance(self: "PoolPolicy[Any]") -> None:
    """One pass of housekeeping (the pool runs it about every second):
    drop dead and expired idle connections, shrink idle ones above
    ``min_size`` after ``max_idle``, refill to ``min_size``, report
    leaks."""
    now = _monotonic()
    keep: Deque[_Slot[Any]] = collections.deque()
    excess = self._nconns - self.min_size
    # oldest-used first: those are the ones to shrink
    for slot in self._idle:
        if slot.conn.closed:
            self._lost(slot)
            excess -= 1
        elif now >= slot.expires:
            self._retire(slot)
        elif self.max_idle and excess > 0 and now - slot.last_used > self.max_idle:
            self._retire(slot)
            excess -= 1
        else:
            keep.append(slot)
    self._idle = keep
    if self.leak_threshold is not None:
        for slot in list(self._slots.values()):
            if (slot.lease is not None and not slot.leak_reported
                    and now - slot.acquired_at > self.leak_threshold):
                slot.leak_reported = True
                log.warning("%s: connection held for %.1f s (leak?); acquired at:\n%s",
                            self.name, now - slot.acquired_at, slot.acquired_stack or "?")
    self._maybe_grow()

# -- resizing, draining, closing ---------------------------------------------------

def resize(self: "PoolPolicy[Any]", min_size: int, max_size: Optional[int] = None) -> None:
    """Change the sizes; growth and shrinking happen in the background."""
    if max_size is None:
        max_size = min_size
    _check_sizes(min_size, max_size)
    self.min_size, self.max_size = min_size, max_size
    excess = self._nconns - min_size
    while excess > 0 and self._idle:
        self._retire(self._idle.popleft())
        excess -= 1
    self._maybe_grow()

def drain(self: "PoolPolicy[Any]") -> None:
    """Replace every connection gracefully: idle ones now, leased ones
    when they come back.  New connections are opened as needed."""
    self._generation += 1
    while self._idle:
        self._retire(self._idle.popleft())
    self._maybe_grow()

def _notify_returned(self: "PoolPolicy[Any]") -> None:
    fut = self._returned
    if fut is not None and not fut.done() and not any(
            s.lease is not None for s in self._slots.values()):
        fut.set_result(None)

async def wait_filled(self: "PoolPolicy[Any]", timeout: Optional[float] = None) -> None:
    """Wait until ``min_size`` connections are open (used by connect)."""
    deadline = _monotonic() + (self.timeout if timeout is None else timeout)
    while not self._closing and sum(
            1 for s in self._slots.values()
            if s.generation == self._generation and not s.abandoned) < self.min_size:
        if _monotonic() >= deadline:
            raise self._timeout_error()
        await asyncio.sleep(0.005)

async def close(self: "PoolPolicy[Any]", timeout: float = 5.0) -> None:
    """Close the pool gracefully.

    New requests and current waiters get :class:`PoolClosed`; idle
    connections are closed at once; leased ones are closed when given
    back, or terminated after ``timeout`` seconds.

    :raises PoolClosed: the pool was already closed.
    """
    if self._closing:
        raise PoolClosed("%s is already closed" % self.name)
    self._closing = True
    if self._loop is None:
        self._closed = True
        return
    self._bind()
    for h in (self._timer, self._retry):
        if h is not None:
            h.cancel()
    self._fail_waiters(PoolClosed("%s was closed" % self.name))
    deadline = _monotonic() + timeout
    while self._idle:
        slot = self._idle.popleft()
        self._retire(slot)
    if any(s.lease is not None for s in self._slots.values()):
        returned: "asyncio.Future[None]" = self._loop.create_future()
        self._returned = returned
        self._notify_returned()
        try:
            await asyncio.wait_for(asyncio.shield(returned),
                                   max(deadline - _monotonic(), 0.0))
        except asyncio.TimeoutError:
            pass
    # let reapers and closers finish, then cut what is left
    while self._tasks and _monotonic() < deadline:
        await asyncio.wait(list(self._tasks), timeout=max(deadline - _monotonic(), 0.0))
    self._closed = True
    for task in list(self._tasks):
        task.cancel()
    if self._tasks:
        await asyncio.wait(list(self._tasks), timeout=1.0)
    for slot in list(self._slots.values()):
        slot.conn.terminate()
        if slot.lease is not None:
            slot.lease._slot = None
            slot.lease._policy = None
        self._slots.pop(id(slot.conn), None)
        self._nconns -= 1

# -- introspection ------------------------------------------------------------

def stats(self: "PoolPolicy[Any]", reset: bool = False) -> Dict[str, int]:
    """Counters and gauges with psycopg_pool's key names.

    :param reset: zero the counters after reading them.
    """
    s: Dict[str, int] = {
        "pool_min": self.min_size,
        "pool_max": self.max_size,
        "pool_size": self._nconns + self._pending,
        "pool_available": len(self._idle),
        "requests_waiting": len(self._waiters),
        "requests_wait_ms": int(self._wait_s * 1000),
        "usage_ms": int(self._usage_s * 1000),
        "connections_ms": int(self._connect_s * 1000),
    }
    s.update(self._st)
    if reset:
        for k in self._st:
            self._st[k] = 0
        self._wait_s = self._usage_s = self._connect_s = 0.0
    return {k: s[k] for k in STATS_KEYS}

def leased(self: "PoolPolicy[Any]") -> List[Lease[Any]]:
    """The leases currently handed out."""
    return [s.lease for s in self._slots.values() if s.lease is not None]
