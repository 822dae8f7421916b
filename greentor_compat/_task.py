"""greentor's green tasks: ``GreenTask``, ``spawn``, ``green``, ``synclize``,
``sleep`` and ``Waiter``.

A :class:`GreenTask` is a greenlet that runs one function.  ``start()``
switches into it at once, so the function runs synchronously until it first
waits; it then switches back to its starter, and the event loop resumes it
when what it waits for is done (see :mod:`greentor_compat._waiting`).
``wait()`` gives the function's outcome as a Future, which Tornado handlers
and coroutines can ``await`` or ``yield``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

import greenlet
from tornado import gen
from tornado.concurrent import is_future
from tornpool.errors import GreenletRequired

from greentor_compat import _waiting
from greentor_compat._timeout import Timeout

__all__ = ["GreenTask", "spawn", "green", "synclize", "sleep", "Waiter"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_EMPTY: Any = object()


class GreenTask(_waiting.Suspendable):
    """A greenlet running ``run(*args, **kwargs)``.

    The keyword argument ``timeout`` is reserved: seconds (0 or absent: none)
    after which :class:`~greentor_compat.green.TimeoutException` is raised
    inside the task where it waits.  It is taken out of :attr:`kwargs` when
    the task starts, as greentor did.
    """

    def __init__(self, run: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._run = run
        self._args = args
        self._kwargs = kwargs
        self._future: asyncio.Future[Any] | concurrent.futures.Future[Any] | None = None
        self._outcome: tuple[bool, Any] | None = None

    @property
    def args(self) -> tuple[Any, ...]:
        return self._args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._kwargs

    def run(self) -> None:  # greenlet entry point
        timeout = self._kwargs.pop("timeout", 0)
        timer = None
        try:
            if timeout:
                timer = Timeout(timeout)
                timer.start()
            result = self._run(*self._args, **self._kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the task's outcome, delivered by wait()
            if isinstance(exc, StopIteration):  # a Future cannot hold it
                wrapped = RuntimeError("the task raised StopIteration")
                wrapped.__cause__ = exc
                exc = wrapped
            self._finish((False, exc))
        else:
            self._finish((True, result))
        finally:
            if timer is not None:
                timer.cancel()

    def _finish(self, outcome: tuple[bool, Any]) -> None:
        self._outcome = outcome
        fut = self._future
        if fut is not None:
            _settle(fut, outcome)

    def start(self) -> None:
        """Switch into the task: it runs until it first waits (or ends)."""
        if self._future is None and _waiting.loop_runs():
            self._future = asyncio.get_running_loop().create_future()
        _waiting.resume(self)

    def wait(self) -> asyncio.Future[Any] | concurrent.futures.Future[Any]:
        """The task's outcome as a Future: its function's return value, or
        what it raised.  An asyncio (Tornado) Future when an event loop runs,
        else a :class:`concurrent.futures.Future`."""
        fut = self._future
        if fut is None:
            if _waiting.loop_runs():
                fut = asyncio.get_running_loop().create_future()
            else:
                fut = concurrent.futures.Future()
            self._future = fut
            if self._outcome is not None:
                _settle(fut, self._outcome)
        return fut

    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> GreenTask:
        """Create a task and start it; returns the task."""
        task = cls(*args, **kwargs)
        task.start()
        return task

    def __str__(self) -> str:
        run = self._run
        name = getattr(run, "__name__", repr(run))
        return "<greenlet %s of %s at %s>" % (name, getattr(run, "__module__", "?"), hex(id(self)))

    __repr__ = __str__


def _settle(fut: asyncio.Future[Any] | concurrent.futures.Future[Any], outcome: tuple[bool, Any]) -> None:
    if fut.done():
        return
    ok, value = outcome
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """Run ``fn(*args, **kwargs)`` in a new :class:`GreenTask`, started at once.

    :returns: a Future of ``fn``'s result (see :meth:`GreenTask.wait`).
    """
    return cast("asyncio.Future[Any]", GreenTask.spawn(fn, *args, **kwargs).wait())


def green(fn: F) -> Callable[..., asyncio.Future[Any]]:
    """Decorator: calling ``fn`` runs it in a new :class:`GreenTask` and
    returns a Future of its result -- a Tornado handler method decorated so
    runs blocking-style code without blocking the loop."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return spawn(fn, *args, **kwargs)

    return wrapper


def synclize(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: ``fn`` is a coroutine function (``async def``, a generator
    for ``@gen.coroutine``, or any function returning an awaitable); the
    decorated function, called from a green task, waits for it and returns
    its result (or raises its error).

    :raises GreenletRequired: called outside a greenlet that may wait (from
        the event loop's own greenlet, for example).
    """
    call: Callable[..., Any] = gen.coroutine(fn) if inspect.isgeneratorfunction(fn) else fn

    @functools.wraps(fn)
    def sync_call(*args: Any, **kwargs: Any) -> Any:
        if not _waiting.can_wait():
            raise GreenletRequired(
                0, "%s is synclized: call it from a green task, not from the event loop's greenlet"
                % getattr(fn, "__name__", fn))
        result = call(*args, **kwargs)
        if inspect.isawaitable(result) or is_future(result):
            return _waiting.wait(result)
        return result

    return sync_call


def _set_none(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def sleep(seconds: float) -> None:
    """Suspend the calling green task for ``seconds``; the loop runs meanwhile.

    :raises GreenletRequired: called outside a greenlet that may wait.
    """
    if not _waiting.can_wait():
        raise GreenletRequired(0, "sleep() blocks: call it from a green task")
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    handle = loop.call_later(seconds, _set_none, fut)
    try:
        _waiting.wait(fut)
    finally:
        handle.cancel()


class Waiter:
    """A one-shot rendezvous for the greenlet that creates it.

    That greenlet calls :meth:`get` to wait; anyone calls :meth:`switch` with
    a value (or :meth:`throw` with an exception) to wake it -- on the next loop
    iteration, never inside the caller's own stack.  A value delivered before
    :meth:`get` is kept for it (greentor switched at once and lost it);
    :meth:`clear` forgets it.
    """

    __slots__ = ("_greenlet", "_fut", "_value", "_exc")

    def __init__(self) -> None:
        self._greenlet = greenlet.getcurrent()
        self._fut: asyncio.Future[Any] | None = None
        self._value: Any = _EMPTY
        self._exc: BaseException | None = None

    @property
    def greenlet(self) -> greenlet.greenlet:
        """The greenlet this waiter belongs to."""
        return self._greenlet

    def switch(self, value: Any = None) -> None:
        """Wake the waiting greenlet with ``value`` (kept if it is not waiting yet)."""
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(value)
        else:
            self._value, self._exc = value, None

    def throw(self, *exc_info: Any) -> None:
        """Wake the waiting greenlet with an exception: ``throw(exc)``,
        ``throw(ExcType)`` or ``throw(type, value, traceback)``."""
        exc = _exception_of(exc_info)
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        else:
            self._value, self._exc = _EMPTY, exc

    def get(self) -> Any:
        """Wait (in this waiter's greenlet) for :meth:`switch` or :meth:`throw`.

        :returns: the value given to :meth:`switch`.
        :raises: the exception given to :meth:`throw`.
        :raises GreenletRequired: called from another greenlet, or one that may not wait.
        """
        if greenlet.getcurrent() is not self._greenlet:
            raise GreenletRequired(0, "Waiter.get() must be called by the greenlet that created the waiter")
        exc, value = self._exc, self._value
        if exc is not None:
            self._exc = None
            raise exc
        if value is not _EMPTY:
            self._value = _EMPTY
            return value
        fut = _waiting.running_loop().create_future()
        self._fut = fut
        try:
            return _waiting.wait(fut)
        finally:
            self._fut = None

    def clear(self) -> None:
        """Forget a value or exception delivered before :meth:`get`."""
        self._value, self._exc = _EMPTY, None


def _exception_of(exc_info: tuple[Any, ...]) -> BaseException:
    if not exc_info:
        raise TypeError("throw() needs an exception")
    first = exc_info[0]
    if isinstance(first, BaseException):
        return first
    if len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
        value: BaseException = exc_info[1]
        if len(exc_info) > 2 and exc_info[2] is not None:
            value = value.with_traceback(exc_info[2])
        return value
    if isinstance(first, type) and issubclass(first, BaseException):
        return first(*exc_info[1:2]) if len(exc_info) > 1 and exc_info[1] is not None else first()
    raise TypeError("throw() needs an exception, got %r" % (first,))
