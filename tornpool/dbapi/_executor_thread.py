"""Crossing threads for the executor pool: the one thread that owns a DB-API
connection (:class:`ConnectionThread`) and the way its results get back to
the event loop (:class:`Inbox`).

Every DB-API connection of an :class:`~tornpool.dbapi.ExecutorPool` lives in
a thread of its own, from ``connect()`` to ``close()``: sqlite3 refuses
cross-thread use, and no other driver is safer for it.  The loop hands the
thread one :class:`Job` at a time through a :class:`queue.SimpleQueue` (a
``put`` wakes the thread); the thread runs it and posts the outcome to the
pool's :class:`Inbox`.

The inbox batches: a thread appends the outcome to a list and asks the loop
to drain it (``loop.call_soon_threadsafe``, which writes to the loop's
self-pipe) only if no drain is pending already.  Under load, when many
threads finish while the loop is busy, one wake-up serves all of them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Job", "ConnectionThread", "Inbox", "STOP"]

log = logging.getLogger("tornpool.dbapi")

Outcome = Callable[[Any, "BaseException | None"], None]


class Job:
    """One call to run in a connection's thread: ``fn(*args)``, then
    ``on_done(result, exc)`` on the loop (through the inbox).  ``owner`` is
    kept alive until then (a lease must not be collected while its call
    runs)."""

    __slots__ = ("fn", "args", "on_done", "owner")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], on_done: Outcome,
                 owner: Any = None) -> None:
        self.fn = fn
        self.args = args
        self.on_done = on_done
        self.owner = owner


#: What :meth:`ConnectionThread.stop` queues: the thread ends after it.
STOP: Any = None


class Inbox:
    """Outcomes posted by connection threads, run on the loop in batches.

    :meth:`post` may be called from any thread; the callbacks run on
    ``loop``, in the order they were posted.
    """

    __slots__ = ("_loop", "_lock", "_items", "_scheduled")

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._scheduled = False

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon (any thread).  Dropped
        silently once the loop is closed: nobody is left to tell."""
        with self._lock:
            self._items.append((callback, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed
            pass

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        for callback, args in items:
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 - one bad callback must not strand the rest
                self._loop.call_exception_handler({
                    "message": "tornpool.dbapi: a completion callback raised",
                    "exception": exc,
                })


class ConnectionThread:
    """The thread that owns one DB-API connection; see the module docstring.

    :param name: the thread's name (shows in tracebacks and ``ps -L``).
    :param inbox: where outcomes go.
    """

    __slots__ = ("_jobs", "_thread", "_inbox", "__weakref__")

    def __init__(self, name: str, inbox: Inbox) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._inbox = inbox
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def ident(self) -> int | None:
        """The thread's identifier (None before it started)."""
        return self._thread.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, job: Job) -> None:
        """Queue ``job``; the thread runs jobs one at a time, in order."""
        self._jobs.put(job)

    def stop(self) -> None:
        """End the thread after the jobs already queued."""
        self._jobs.put(STOP)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _main(self) -> None:
        get = self._jobs.get
        post = self._inbox.post
        while True:
            job = get()
            if job is None:
                return
            try:
                result = job.fn(*job.args)
            except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the loop
                post(job.on_done, None, exc)
            else:
                post(job.on_done, result, None)
