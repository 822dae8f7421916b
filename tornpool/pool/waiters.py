"""FIFO waiters with deadlines, sharing one timer.

A :class:`WaitQueue` holds the requests waiting for a connection, oldest
first.  Each waiter may have a deadline; instead of a loop timer per waiter
(a ``call_at`` and a ``cancel`` per request, ~1.7 us here) the queue keeps the
deadlines in arrival order -- a deque, since most requests share the pool's
one timeout; a heap takes the few that arrive out of order -- and arms a
single timer for the earliest one.  Waiters that were served or gave up are
dropped lazily.

A waiter is any object with a ``done`` attribute or property (True once it
was served, failed or cancelled), ``deliver(item)`` and ``fail(exc)``; the
queue calls ``fail`` with the error its ``on_timeout`` callback builds when a
deadline passes.  Nothing here knows about connections.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
from collections.abc import Callable, Iterator
from typing import Any, Protocol

__all__ = ["Waiter", "WaitQueue"]


class Waiter(Protocol):
    """What :class:`WaitQueue` needs from a waiter."""

    @property
    def done(self) -> bool: ...

    def deliver(self, item: Any) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class WaitQueue:
    """FIFO queue of waiters; see the module docstring.

    Deadlines usually arrive in increasing order (most requests use the
    pool's one timeout), so they go to a plain deque, an append each; only a
    deadline earlier than the last one queued goes to a heap.  One timer is
    armed for the earliest of both.

    :param on_timeout: builds the exception a waiter fails with at its
        deadline (called once per expired waiter).
    """

    __slots__ = ("_queue", "_ordered", "_heap", "_timer", "_timer_at", "_loop", "_on_timeout",
                 "_count")

    def __init__(self, on_timeout: Callable[[], BaseException]) -> None:
        self._queue: collections.deque[Waiter] = collections.deque()
        # (loop time, waiter), deadlines in increasing order
        self._ordered: collections.deque[tuple[float, Waiter]] = collections.deque()
        # (loop time, tie-breaker, waiter) for deadlines that came out of order
        self._heap: list[tuple[float, int, Waiter]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_timeout = on_timeout
        self._count = 0

    def __len__(self) -> int:
        """Waiters in the queue, including ones that gave up but were not
        dropped yet (:meth:`live` counts exactly)."""
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def live(self) -> int:
        """Waiters still waiting."""
        return sum(1 for w in self._queue if not w.done)

    def __iter__(self) -> Iterator[Waiter]:
        return iter(self._queue)

    def push(self, waiter: Waiter, deadline: float | None, loop: asyncio.AbstractEventLoop,
             front: bool = False) -> None:
        """Queue ``waiter`` (at the back, or at the ``front`` for one that was
        served a dead connection and keeps its place); fail it at loop time
        ``deadline`` unless it is done by then."""
        if front:
            self._queue.appendleft(waiter)
        else:
            self._queue.append(waiter)
        if deadline is None:
            return
        self._loop = loop
        ordered = self._ordered
        while ordered and ordered[0][1].done:
            ordered.popleft()  # served or gone: its deadline no longer matters
        if not ordered or deadline >= ordered[-1][0]:
            ordered.append((deadline, waiter))
        else:
            heap = self._heap
            while heap and heap[0][2].done:
                heapq.heappop(heap)
            self._count += 1
            heapq.heappush(heap, (deadline, self._count, waiter))
        if deadline < self._timer_at:
            self._rearm()

    def pop(self) -> Waiter | None:
        """The oldest waiter still waiting (removed), or None."""
        queue = self._queue
        while queue:
            waiter = queue.popleft()
            if not waiter.done:
                return waiter
        return None

    def pop_if(self, wanted: Callable[[Waiter], bool]) -> Waiter | None:
        """The oldest waiter still waiting, removed if ``wanted(waiter)``,
        else None (and it stays first).  Its deadline stays armed: a waiter
        taken out this way is still failed at its deadline unless it is
        done by then."""
        queue = self._queue
        while queue:
            waiter = queue[0]
            if waiter.done:
                queue.popleft()
                continue
            if not wanted(waiter):
                return None
            return queue.popleft()
        return None

    def remove(self, waiter: Waiter) -> None:
        """Drop ``waiter`` (if still queued)."""
        try:
            self._queue.remove(waiter)
        except ValueError:
            pass

    def fail_all(self, exc: BaseException, keep: Callable[[Waiter], bool] | None = None) -> int:
        """Fail every waiter except those ``keep`` says to keep queued;
        returns how many were failed."""
        kept = [w for w in self._queue if keep is not None and keep(w)]
        waiters = [w for w in self._queue if not w.done and (keep is None or not keep(w))]
        self._queue.clear()
        self._queue.extend(kept)
        for waiter in waiters:
            waiter.fail(exc)
        self._ordered = collections.deque(e for e in self._ordered if not e[1].done)
        self._heap = [e for e in self._heap if not e[2].done]
        heapq.heapify(self._heap)
        self._rearm()
        return len(waiters)

    @property
    def timer_armed(self) -> bool:
        """True while the deadline timer is armed (for tests and stats)."""
        return self._timer is not None

    def _earliest(self) -> float:
        ordered, heap = self._ordered, self._heap
        while ordered and ordered[0][1].done:
            ordered.popleft()
        while heap and heap[0][2].done:
            heapq.heappop(heap)
        first = ordered[0][0] if ordered else float("inf")
        return min(first, heap[0][0]) if heap else first

    def _rearm(self) -> None:
        """Point the timer at the earliest waiter still waiting (none: no timer)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = when = self._earliest()
        if when != float("inf") and self._loop is not None:
            self._timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        # asyncio runs a timer up to its clock resolution early
        now = loop.time() + 1e-6
        expired = []
        ordered, heap = self._ordered, self._heap
        while ordered and ordered[0][0] <= now:
            waiter = ordered.popleft()[1]
            if not waiter.done:
                expired.append(waiter)
        while heap and heap[0][0] <= now:
            waiter = heapq.heappop(heap)[2]
            if not waiter.done:
                expired.append(waiter)
        for waiter in expired:
            self.remove(waiter)
            waiter.fail(self._on_timeout())
        self._rearm()
