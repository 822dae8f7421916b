"""greentor's ``Timeout`` and ``TimeoutException``: a deadline for a greenlet.

A started :class:`Timeout` either calls a callback or makes the greenlet that
created it raise an exception when its deadline passes.  The exception is
raised where that greenlet waits (a query, a sleep, a pool, a lock); code that
never waits cannot be interrupted, exactly as in greentor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

import greenlet

from greentor_compat import _waiting

__all__ = ["Timeout", "TimeoutException"]


class TimeoutException(Exception):
    """A :class:`Timeout` expired (also what ``GreenTask(..., timeout=s)``,
    ``Event.wait(timeout)`` and friends raise)."""


ExceptionFactory = Callable[[str], BaseException]


class Timeout:
    """A deadline of ``deadline`` seconds for the greenlet that creates it.

    :param deadline: relative seconds, counted from :meth:`start`.
    :param ex: the exception class (called with a message) or instance to
        raise when the deadline passes.

    ``with Timeout(2):`` starts it on entry and cancels it on exit.
    """

    def __init__(self, deadline: float, ex: ExceptionFactory | BaseException = TimeoutException) -> None:
        self._greenlet: greenlet.greenlet | None = greenlet.getcurrent()
        self._ex = ex
        self._deadline = deadline
        self._handle: asyncio.TimerHandle | None = None
        self._started = False
        self._armed = False

    @property
    def deadline(self) -> float:
        """The relative deadline, in seconds."""
        return self._deadline

    @property
    def pending(self) -> bool:
        """True while started and neither fired nor cancelled."""
        return self._handle is not None

    def _exception(self) -> BaseException:
        ex = self._ex
        if isinstance(ex, BaseException):
            return ex
        return ex("%s timeout, deadline is %g seconds" % (self._greenlet, self._deadline))

    def start(self, callback: Callable[[BaseException], Any] | None = None) -> None:
        """Arm the deadline on the running event loop.  When it passes,
        ``callback(exception)`` is called from the loop -- or, without a
        callback, the exception is raised inside the greenlet that created
        this Timeout, where it waits.  Starting again re-arms it.

        :raises GreenletRequired: no event loop runs in this thread.
        """
        loop = _waiting.running_loop()
        if self._started:
            self.cancel()
        self._started = True
        glet = self._greenlet
        if callback is None and glet is not None:
            _waiting.arm(glet)
            self._armed = True
        self._handle = loop.call_later(self._deadline, self._fire, callback)

    def _fire(self, callback: Callable[[BaseException], Any] | None) -> None:
        self._handle = None
        exc = self._exception()
        glet = self._greenlet
        if callback is not None:
            callback(exc)
            return
        if glet is not None:
            self._disarm()
            _waiting.interrupt(glet, exc)

    def _disarm(self) -> None:
        if self._armed and self._greenlet is not None:
            self._armed = False
            _waiting.disarm(self._greenlet)

    def cancel(self) -> None:
        """Disarm the deadline (a no-op once it fired).

        :raises RuntimeError: it was never started.
        """
        if not self._started:
            raise RuntimeError("Timeout.cancel() called before start()")
        handle = self._handle
        self._handle = None
        if handle is not None:
            handle.cancel()
        self._disarm()

    def __enter__(self) -> Timeout:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cancel()

    def __repr__(self) -> str:
        state = "pending" if self.pending else ("done" if self._started else "not started")
        return "<Timeout %gs %s>" % (self._deadline, state)
