"""Handing out worker handles: one FIFO queue for threads and coroutines.

:class:`WorkerSlots` holds the idle handles of one role (the readers, or the
single writer).  A caller takes one, runs its round trip and gives it back.
Threads wait on a private lock, coroutines on an asyncio future of their own
loop; both stand in the same FIFO queue, and a released handle goes
straight to the first waiter (no thundering herd, no barging).

With ``patience`` (the writer without group commit), a thread that finds
the handle busy does not queue at once: it naps and looks again (0.1 ms,
doubling to 2 ms) for up to ``patience`` seconds, and only then joins the
queue.  A release with nobody queued wakes nobody, so a thread that writes
again at once takes the writer back without a thread switch -- the shape
SQLite's own busy handler gives threads that each have a connection, and
on one core the cheapest one, since every hand-over to a sleeping thread
costs a wake-up that is dearer than a short write.  Queued callers (those
out of patience, and every coroutine) still come first, so no thread waits
much longer than ``patience`` plus the queue ahead of it.

The slots also know which thread holds each handle, so a blocking wait that
only the waiting thread itself could end -- it holds every handle already,
through a transaction or through coroutines of its own event loop -- raises
:class:`~tornpool.dbapi._sqlite_errors.WouldDeadlock` instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union

from ._sqlite_errors import ProxyClosed, ProxyTimeout, WouldDeadlock
from ._sqlite_handles import Handle
from ._sqlite_protocol import Request

__all__ = ["WorkerSlots"]

#: a patient thread's first nap, and its longest
_FIRST_NAP = 0.0001
_LONGEST_NAP = 0.002


class _ThreadWaiter:
    __slots__ = ("lock", "ident", "handle", "error")

    def __init__(self, ident: int) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.ident = ident
        self.handle: Optional[Handle] = None
        self.error: Optional[BaseException] = None


_AsyncWaiter = Tuple["asyncio.Future[Handle]", int]
_Waiter = Union[_ThreadWaiter, _AsyncWaiter]


class WorkerSlots:
    """The idle handles of one role and the callers waiting for one.

    :param handles: every handle of the role (all idle at first).
    :param role: "writer" or "reader" (for messages).
    :param patience: seconds a thread naps and retries before it queues
        (0: it queues at once; see the module's docstring).
    """

    def __init__(self, handles: Sequence[Handle], role: str, patience: float = 0.0) -> None:
        self.handles = tuple(handles)
        self.role = role
        self.patience = patience
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        self._idle: Deque[Handle] = deque(handles)
        self._waiters: Deque[_Waiter] = deque()
        self._holders: Dict[Handle, int] = {}
        self._napping = 0
        self._closed = False

    def prepare(self, request: Request) -> Any:
        """``request`` made ready for these handles (all of one kind), before
        one is taken: see :meth:`~tornpool.dbapi._sqlite_handles.Handle.prepare`.

        :raises UnpicklableParameters: they are processes and it does not pickle.
        """
        return self.handles[0].prepare(request)

    def _would_deadlock(self, ident: int) -> bool:
        holders = self._holders
        return len(holders) == len(self.handles) and all(t == ident for t in holders.values())

    def _take_idle(self, ident: int) -> Optional[Handle]:
        """Under the lock: an idle handle for thread ``ident``, or None."""
        if self._closed:
            raise ProxyClosed("the SQLite proxy is closed")
        if not self._idle:
            return None
        handle = self._idle.popleft()
        self._holders[handle] = ident
        return handle

    def acquire(self, timeout: Optional[float]) -> Handle:
        """Take a handle, blocking the calling thread until one is free.

        :raises ProxyTimeout: none was free within ``timeout`` seconds.
        :raises ProxyClosed: the proxy closed.
        :raises WouldDeadlock: this thread holds every handle of the role.
        """
        ident = threading.get_ident()
        with self._lock:
            handle = self._take_idle(ident)
            if handle is not None:
                return handle
            if self._would_deadlock(ident):
                raise WouldDeadlock(
                    "this thread already holds the %s (a transaction() block, or coroutines "
                    "of its own event loop); waiting for it here would never end" % self.role)
            waiter = None if self.patience else self._enqueue(ident)
        left = timeout
        if waiter is None:  # patient: nap first, queue after
            handle, left = self._nap(ident, timeout)
            if handle is not None:
                return handle
            with self._lock:
                handle = self._take_idle(ident)  # released after the last look
                if handle is not None:
                    return handle
                waiter = self._enqueue(ident)
        if not waiter.lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
            with self._lock:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass  # handed over meanwhile: take it
                else:
                    raise self._timed_out(timeout)
            waiter.lock.acquire()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.handle is not None
        return waiter.handle

    def _enqueue(self, ident: int) -> _ThreadWaiter:
        """Under the lock: queue a waiter for thread ``ident``."""
        waiter = _ThreadWaiter(ident)
        self._waiters.append(waiter)
        return waiter

    def _nap(self, ident: int, timeout: Optional[float]
             ) -> Tuple[Optional[Handle], Optional[float]]:
        """Nap and look again for up to :attr:`patience` seconds.

        :returns: (the handle, None), or (None, what is left of ``timeout``).
        :raises ProxyTimeout: ``timeout`` ran out first.
        :raises ProxyClosed: the proxy closed meanwhile.
        """
        now = time.monotonic()
        give_up = now + self.patience
        deadline = None if timeout is None else now + max(timeout, 0.0)
        nap = _FIRST_NAP
        with self._lock:
            self._napping += 1
        try:
            while True:
                end = give_up if deadline is None else min(give_up, deadline)
                time.sleep(min(nap, max(end - now, 0.0)))
                with self._lock:
                    handle = self._take_idle(ident)
                if handle is not None:
                    return handle, None
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise self._timed_out(timeout)
                if now >= give_up:
                    return None, None if deadline is None else deadline - now
                nap = min(nap * 2, _LONGEST_NAP)
        finally:
            with self._lock:
                self._napping -= 1

    def _timed_out(self, timeout: Optional[float]) -> ProxyTimeout:
        return ProxyTimeout("no SQLite %s was free within %.3g s" % (self.role, timeout or 0.0))

    def try_acquire(self) -> Union[Handle, "asyncio.Future[Handle]"]:
        """For a coroutine: a free handle at once, else a future of the
        running loop that resolves to one (FIFO with the threads).  Cancel
        the future (or let it time out) to leave the queue; a handle handed
        to a future that was already done goes to the next waiter.

        :raises ProxyClosed: the proxy closed (the future fails with it too).
        """
        ident = threading.get_ident()
        with self._lock:
            handle = self._take_idle(ident)
            if handle is not None:
                return handle
            fut: asyncio.Future[Handle] = asyncio.get_running_loop().create_future()
            self._waiters.append((fut, ident))
            return fut

    def release(self, handle: Handle) -> None:
        """Give ``handle`` back: to the first waiter still waiting, else idle."""
        with self._lock:
            self._holders.pop(handle, None)
            while self._waiters:
                waiter = self._waiters.popleft()
                if isinstance(waiter, _ThreadWaiter):
                    self._holders[handle] = waiter.ident
                    waiter.handle = handle
                    waiter.lock.release()
                    return
                fut, ident = waiter
                if fut.done():
                    continue
                self._holders[handle] = ident
                loop = fut.get_loop()
                try:
                    if ident == threading.get_ident():
                        loop.call_soon(self._deliver, fut, handle)
                    else:
                        loop.call_soon_threadsafe(self._deliver, fut, handle)
                except RuntimeError:  # that loop is closed
                    del self._holders[handle]
                    continue
                return
            self._idle.append(handle)
            if self._closed:  # drain() may be waiting for it
                self._released.notify_all()

    def _deliver(self, fut: "asyncio.Future[Handle]", handle: Handle) -> None:
        if fut.done():  # cancelled or timed out after it was chosen
            self.release(handle)
        else:
            fut.set_result(handle)

    def close(self) -> None:
        """Refuse new callers and fail every waiter with :class:`ProxyClosed`."""
        with self._lock:
            self._closed = True
            waiters = list(self._waiters)
            self._waiters.clear()
        for waiter in waiters:
            error = ProxyClosed("the SQLite proxy closed while this call waited for a worker")
            if isinstance(waiter, _ThreadWaiter):
                waiter.error = error
                waiter.lock.release()
            else:
                fut = waiter[0]
                try:
                    fut.get_loop().call_soon_threadsafe(_fail, fut, error)
                except RuntimeError:
                    pass

    def drain(self, deadline: float) -> Tuple[List[Handle], List[Handle]]:
        """After :meth:`close`: wait until every handle is back or the
        ``deadline`` (``time.monotonic()``) passes.

        :returns: (idle handles, handles still in use).
        """
        with self._lock:
            while len(self._idle) < len(self.handles):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._released.wait(left)
            idle = list(self._idle)
        return idle, [h for h in self.handles if h not in idle]

    def in_use(self) -> int:
        """Handles currently handed out."""
        with self._lock:
            return len(self.handles) - len(self._idle)

    def waiting(self) -> int:
        """Callers waiting for a handle (queued, or napping: see ``patience``)."""
        with self._lock:
            return len(self._waiters) + self._napping

    def napping(self) -> int:
        """Threads napping for a handle (not queued yet: see ``patience``)."""
        with self._lock:
            return self._napping


def _fail(fut: "asyncio.Future[Handle]", error: BaseException) -> None:
    if not fut.done():
        fut.set_exception(error)
