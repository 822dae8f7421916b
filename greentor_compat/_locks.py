"""Synchronisation for green tasks: greentor's ``Event``, plus ``Lock``,
``Semaphore`` and ``Queue`` (which greentor lacked).

They block the calling greenlet, never the event loop, and follow the
standard library's ``threading`` / ``queue`` shapes: ``acquire(blocking,
timeout)`` returning a bool, ``with lock:``, ``queue.Empty`` / ``queue.Full``.
Waiters are served first come, first served.  Operations that never block
(``set()``, ``release()``, ``put_nowait()``...) may be called from anywhere on
the loop's thread, including plain coroutines and callbacks.
"""

from __future__ import annotations

import asyncio
import collections
import queue as _queue
from types import TracebackType
from typing import Any, Generic, TypeVar

from tornpool.errors import GreenletRequired

from greentor_compat import _waiting
from greentor_compat._timeout import TimeoutException

__all__ = ["Event", "Lock", "Semaphore", "Queue"]

T = TypeVar("T")

#: What a waiter's Future resolves to when its timeout passed first.
_EXPIRED: Any = object()


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(_EXPIRED)


def _new_waiter(what: str) -> asyncio.Future[Any]:
    if not _waiting.can_wait():
        raise GreenletRequired(0, "%s would block: call it from a green task" % what)
    return asyncio.get_running_loop().create_future()


def _block(fut: asyncio.Future[Any], timeout: float | None) -> Any:
    """Wait for ``fut``; :data:`_EXPIRED` if ``timeout`` seconds pass first."""
    handle = None
    if timeout is not None:
        handle = fut.get_loop().call_later(max(timeout, 0.0), _expire, fut)
    try:
        return _waiting.wait(fut)
    finally:
        if handle is not None:
            handle.cancel()


def _wait_turn(waiters: collections.deque[asyncio.Future[Any]], timeout: float | None, what: str,
               give_back: Any) -> bool:
    """Queue for a lock or permit and wait for it to be handed over.

    :returns: True once handed over; False if ``timeout`` passed first.
    """
    fut = _new_waiter(what)
    waiters.append(fut)
    try:
        got = _block(fut, timeout)
    except BaseException:
        if fut.done() and not fut.cancelled() and fut.result() is True:
            give_back()  # handed to us just as we were interrupted
        else:
            fut.cancel()
        raise
    return got is True


def _wake_first(waiters: collections.deque[asyncio.Future[Any]], value: Any) -> bool:
    """Resolve the oldest waiter still waiting; False if there is none."""
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(value)
            return True
    return False


class Event:
    """A flag green tasks can wait for.

    :meth:`set` wakes every waiter on the next loop iteration; the flag
    stays set until :meth:`clear` (greentor's Event forgot a ``set()`` that
    came before the ``wait()``, which could then hang).
    """

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[asyncio.Future[Any]] = []

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        self._flag = True
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set.

        :returns: True.
        :raises TimeoutException: ``timeout`` seconds passed first.
        :raises GreenletRequired: it would block outside a green task.
        """
        if self._flag:
            return True
        fut = _new_waiter("Event.wait()")
        self._waiters.append(fut)
        try:
            if _block(fut, timeout) is _EXPIRED:
                raise TimeoutException("Event.wait() timed out after %g s" % timeout)  # type: ignore[str-format]
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
        return True


class Semaphore:
    """A counter green tasks wait on (``threading.Semaphore``'s API); a
    release hands the permit straight to the oldest waiter."""

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("Semaphore initial value must be >= 0")
        self._value = value
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()

    @property
    def value(self) -> int:
        """Permits currently free."""
        return self._value

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one permit.

        :returns: True once taken; False if ``blocking`` is false and none is
            free, or ``timeout`` seconds (None or negative: no limit) passed first.
        :raises GreenletRequired: it would block outside a green task.
        """
        if self._value > 0 and not any(not f.done() for f in self._waiters):
            self._value -= 1
            return True
        if not blocking:
            return False
        return _wait_turn(self._waiters, None if timeout is None or timeout < 0 else timeout,
                          "%s.acquire()" % type(self).__name__, self.release)

    def release(self, n: int = 1) -> None:
        """Give back ``n`` permits, to the oldest waiters first."""
        for _ in range(n):
            if not _wake_first(self._waiters, True):
                self._value += 1

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class Lock(Semaphore):
    """A mutual-exclusion lock for green tasks (``threading.Lock``'s API):
    one permit, handed straight to the oldest waiter on release."""

    def __init__(self) -> None:
        super().__init__(1)

    def locked(self) -> bool:
        return self._value == 0

    def release(self, n: int = 1) -> None:
        """Give the lock back (to the oldest waiter, if any).

        :raises RuntimeError: the lock is not held.
        """
        if self._value:
            raise RuntimeError("release of an unlocked Lock")
        super().release()


class Queue(Generic[T]):
    """A FIFO queue for green tasks (``queue.Queue``'s API; ``maxsize`` 0:
    unbounded).  Blocking ``get``/``put`` wait in the calling greenlet;
    ``get_nowait``/``put_nowait`` work anywhere."""

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._getters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._putters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._unfinished = 0
        self._all_done = Event()
        self._all_done.set()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Append ``item``, waiting for room in a bounded queue.

        :raises queue.Full: no room and ``block`` is false, or ``timeout``
            seconds passed first.
        :raises GreenletRequired: it would block outside a green task.
        """
        self._wait_while(self.full, self._putters, block, timeout, _queue.Full, "Queue.put()")
        self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """:raises queue.Full: a bounded queue is full."""
        if self.full():
            raise _queue.Full
        self._items.append(item)
        self._unfinished += 1
        self._all_done.clear()
        _wake_first(self._getters, True)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return the oldest item, waiting for one.

        :raises queue.Empty: nothing came and ``block`` is false, or
            ``timeout`` seconds passed first.
        :raises GreenletRequired: it would block outside a green task.
        """
        self._wait_while(self.empty, self._getters, block, timeout, _queue.Empty, "Queue.get()")
        return self.get_nowait()

    @staticmethod
    def _wait_while(blocked: Any, waiters: collections.deque[asyncio.Future[Any]], block: bool,
                    timeout: float | None, error: type[Exception], what: str) -> None:
        """Wait in ``waiters`` while ``blocked()``; ``error`` when not
        blocking or after ``timeout``."""
        while blocked():
            if not block:
                raise error
            fut = _new_waiter(what)
            waiters.append(fut)
            try:
                got = _block(fut, timeout)
            except BaseException:
                fut.cancel()
                if not blocked():
                    _wake_first(waiters, True)  # pass the room or the item on
                raise
            if got is _EXPIRED:
                raise error

    def get_nowait(self) -> T:
        """:raises queue.Empty: the queue is empty."""
        if not self._items:
            raise _queue.Empty
        item = self._items.popleft()
        _wake_first(self._putters, True)
        return item

    def task_done(self) -> None:
        """One item taken earlier is fully processed (for :meth:`join`).

        :raises ValueError: called more times than items were put.
        """
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0:
            self._all_done.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until every item put was marked :meth:`task_done`.

        :raises TimeoutException: ``timeout`` seconds passed first.
        """
        self._all_done.wait(timeout)
