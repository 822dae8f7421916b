"""How blocking-style code in a greenlet waits without blocking the event loop.

Two kinds of greenlet may wait here:

* :class:`Suspendable` greenlets -- greentor's :class:`~greentor_compat.green.GreenTask`
  and its subclasses.  They keep greentor's model: a waiting task switches
  back to whoever switched into it last (the code that started it, or the
  loop callback that resumed it), and a done-callback on the awaited Future
  switches into it again.  Every switch *into* such a greenlet goes through
  :func:`resume` / :func:`throw`, which first make the switching greenlet its
  parent, so that the task's next wait (or its end) returns there.
* greenlets started by :func:`tornpool.green.spawn` -- they wait through
  :func:`tornpool.green.await_`, driven by tornpool's worker.

:func:`wait` picks the right one; :func:`can_wait` tells whether the caller
may wait at all.  Any other greenlet -- the one running the event loop above
all -- may not: there, :func:`wait` raises
:class:`~tornpool.errors.GreenletRequired` instead of blocking the loop.

:func:`interrupt` makes a greenlet's current wait raise an exception (what
:class:`~greentor_compat.green.Timeout` does when it expires).
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

import greenlet
from tornado.gen import convert_yielded, moment
from tornpool.errors import GreenletRequired
from tornpool.green import await_, in_greenlet

__all__ = [
    "Suspendable",
    "can_wait",
    "wait",
    "running_loop",
    "loop_runs",
    "resume",
    "throw",
    "interrupt",
    "arm",
    "disarm",
    "close_awaitable",
]

T = TypeVar("T")

#: What a done-callback switches into a waiting :class:`Suspendable` with.
_WOKEN: Any = object()

_NOT_HERE = (
    "this must run inside a greenlet started by greentor_compat.green "
    "(spawn, green, GreenTask) or tornpool.green.spawn, on a running event loop; "
    "on the event loop's own greenlet it would block the loop"
)


class Suspendable(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet that waits by switching back to whoever resumed it last.

    ``_wait_token`` identifies the wait it is suspended in (None: not in one
    of ours); ``_pending`` holds an interrupt that arrived before it started.
    """

    _wait_token: object | None = None
    _pending: BaseException | None = None


class _Interrupts:
    """Per tornpool-spawned greenlet with an armed Timeout: its current wait
    goes through ``current``, a Future an interrupt can fail."""

    __slots__ = ("armed", "current", "_pending")

    def __init__(self) -> None:
        self.armed = 0
        self.current: asyncio.Future[Any] | None = None
        self._pending: BaseException | None = None


_interrupts: weakref.WeakKeyDictionary[greenlet.greenlet, _Interrupts] = weakref.WeakKeyDictionary()


def running_loop() -> asyncio.AbstractEventLoop:
    """The running event loop.

    :raises GreenletRequired: no event loop runs in this thread.
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise GreenletRequired(0, _NOT_HERE) from None


def loop_runs() -> bool:
    """True when an event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def can_wait() -> bool:
    """True when the caller may wait with :func:`wait`: inside a
    :class:`Suspendable` greenlet on a running event loop, or inside a
    greenlet started by :func:`tornpool.green.spawn`."""
    if in_greenlet():
        return True
    return isinstance(greenlet.getcurrent(), Suspendable) and loop_runs()


def close_awaitable(awaitable: Any) -> None:
    """Close a coroutine that will never be awaited (no "never awaited" warning)."""
    if asyncio.iscoroutine(awaitable):
        awaitable.close()


def wait(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` (a coroutine, a Future, anything Tornado's
    ``yield`` accepts) from blocking-style code; the event loop runs other
    work meanwhile.  A Future that is already done costs no switch.

    :returns: the awaitable's result.
    :raises: the awaitable's exception, or what :func:`interrupt` threw in.
    :raises GreenletRequired: the caller may not wait (see :func:`can_wait`).
    """
    glet = greenlet.getcurrent()
    if awaitable is None or awaitable is moment:
        # Tornado's "let the loop run one iteration"
        awaitable = asyncio.sleep(0)  # type: ignore[assignment]
    if isinstance(glet, Suspendable):
        return _wait_suspendable(glet, awaitable)
    if in_greenlet():
        state = _interrupts.get(glet)
        if state is not None:
            return _wait_interruptible(state, awaitable)
        if not inspect.isawaitable(awaitable):  # lists, dicts, concurrent futures
            awaitable = convert_yielded(awaitable)
        return await_(awaitable)
    close_awaitable(awaitable)
    raise GreenletRequired(0, _NOT_HERE)


def _raise_pending(holder: Suspendable | _Interrupts, awaitable: Any) -> None:
    """Raise an interrupt that came while ``holder``'s greenlet was not waiting."""
    pending = holder._pending
    if pending is not None:
        holder._pending = None
        close_awaitable(awaitable)
        raise pending


def _wait_suspendable(glet: Suspendable, awaitable: Awaitable[T]) -> T:
    _raise_pending(glet, awaitable)
    if not loop_runs():
        close_awaitable(awaitable)
        raise GreenletRequired(0, _NOT_HERE)
    fut = convert_yielded(awaitable)
    own = fut is not awaitable  # a Task we made for it: cancel it if interrupted
    if not fut.done():
        token = object()

        def wake(_: Any) -> None:
            if glet._wait_token is token and not glet.dead:
                glet._wait_token = None
                resume(glet, _WOKEN)

        glet._wait_token = token
        fut.add_done_callback(wake)
        try:
            while glet.parent.switch() is not _WOKEN:
                pass  # a stray switch into a waiting task: keep waiting
        except BaseException:
            glet._wait_token = None
            fut.remove_done_callback(wake)
            if own:
                fut.cancel()
            else:  # nobody waits for it now: its outcome is ours to consume
                fut.add_done_callback(_consume)
            raise
    return fut.result()  # type: ignore[no-any-return]


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _wait_interruptible(state: _Interrupts, awaitable: Awaitable[T]) -> T:
    _raise_pending(state, awaitable)
    loop = running_loop()
    inner = convert_yielded(awaitable)
    own = inner is not awaitable
    if inner.done():
        return inner.result()  # type: ignore[no-any-return]
    outer: asyncio.Future[Any] = loop.create_future()

    def relay(src: asyncio.Future[Any]) -> None:
        if outer.done():
            return
        if src.cancelled():
            outer.cancel()
        elif src.exception() is not None:
            outer.set_exception(src.exception())  # type: ignore[arg-type]
        else:
            outer.set_result(src.result())

    inner.add_done_callback(relay)
    state.current = outer
    try:
        return await_(outer)  # type: ignore[no-any-return]
    except BaseException:
        if own and not inner.done():
            inner.cancel()
        raise
    finally:
        state.current = None


def resume(glet: greenlet.greenlet, *value: Any) -> Any:
    """Switch into ``glet`` (a suspended :class:`Suspendable` with the value
    it waits for, or one not started yet with none), making the caller its
    parent so that it comes back here when it waits again or ends."""
    glet.parent = greenlet.getcurrent()
    return glet.switch(*value)


def throw(glet: greenlet.greenlet, exc: BaseException) -> Any:
    """Raise ``exc`` inside the suspended ``glet`` (see :func:`resume`)."""
    glet.parent = greenlet.getcurrent()
    return glet.throw(exc)


def interrupt(glet: greenlet.greenlet, exc: BaseException) -> None:
    """Make ``glet``'s current wait raise ``exc`` -- at once if it is waiting,
    else at its next wait.  Nothing happens to a greenlet that has ended or
    to the calling greenlet itself (which is not waiting: it runs)."""
    if glet.dead or glet is greenlet.getcurrent():
        return
    if isinstance(glet, Suspendable):
        if not glet:  # not started yet: raise at its first wait
            glet._pending = exc
            return
        glet._wait_token = None
        throw(glet, exc)
        return
    state = _interrupts.get(glet)
    if state is None:
        return
    current = state.current
    if current is not None and not current.done():
        current.set_exception(exc)
    else:
        state._pending = exc


def arm(glet: greenlet.greenlet) -> None:
    """Let :func:`interrupt` reach ``glet``'s waits (a Timeout was started for
    it); only needed for greenlets that are not :class:`Suspendable`."""
    if isinstance(glet, Suspendable):
        return
    state = _interrupts.get(glet)
    if state is None:
        state = _interrupts[glet] = _Interrupts()
    state.armed += 1


def disarm(glet: greenlet.greenlet) -> None:
    """Undo one :func:`arm` (the Timeout was cancelled or fired)."""
    state = _interrupts.get(glet)
    if state is None:
        return
    state.armed -= 1
    if state.armed <= 0 and state.current is None:
        del _interrupts[glet]
