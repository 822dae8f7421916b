"""The worker greenlet: blocking-style code driven by a coroutine.

This package is the only place in tornpool that imports :mod:`greenlet`.

PyMySQL is written against a blocking socket.  tornpool runs it, unchanged,
inside a *worker greenlet*: one persistent greenlet per connection, reused for
every command that takes the greenlet path (connect, authentication, TLS,
``LOAD DATA LOCAL``, ``executemany``, stored procedures, streaming cursors).
The coroutine that issues the command is the worker's *driver*: it switches
into the worker, and the worker switches back only when it must wait (for the
network, or for any awaitable), handing the driver that awaitable.  When it
resolves, the driver switches back in with its result.  So a command that
finds its reply already buffered costs no switch at all.

:func:`spawn` and :func:`await_` offer the same to compat layers (greentor's
API): run a function in a fresh greenlet from a coroutine, and from inside it
wait for any awaitable as if it were a blocking call.

Nothing here touches the network or knows about MySQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import greenlet

from tornpool.errors import GreenletRequired

__all__ = ["GreenWorker", "spawn", "await_", "in_greenlet", "current_worker"]

T = TypeVar("T")

#: Awaitable stand-in a worker passes to :meth:`GreenWorker.wait` to give the
#: loop one turn.
YIELD: Any = object()

# Messages from the worker to its driver: (kind, payload).
_DONE = 0  # payload: the function's return value
_FAIL = 1  # payload: the exception it raised
_WAIT = 2  # payload: an awaitable the driver must await on the worker's behalf


class GreenWorker(Generic[T]):
    """A persistent greenlet that runs blocking-style functions for one owner.

    :meth:`run` is a coroutine: it switches into the worker, runs ``fn(*args)``
    there, awaits on the worker's behalf every awaitable the worker hands out
    through :meth:`wait`, and resolves to ``fn``'s return value (or raises
    what ``fn`` raised).  One :meth:`run` at a time; the owner enforces that.

    ``on_cancel`` is called (from the loop's side) when the driving coroutine
    is cancelled while the worker is mid-function; the owner uses it to close
    the transport so that the worker's pending wait fails and the function
    unwinds.  The cancellation is then re-raised to the caller.
    """

    __slots__ = ("_glet", "_driver", "_reply", "_running", "on_cancel", "__weakref__")

    def __init__(self, on_cancel: Callable[[], None] | None = None) -> None:
        self._glet: greenlet.greenlet | None = None
        self._driver: greenlet.greenlet | None = None
        self._reply: tuple[int, Any] | None = None
        self._running = False
        self.on_cancel = on_cancel

    @property
    def running(self) -> bool:
        """True while a function runs in the worker."""
        return self._running

    # -- worker side ---------------------------------------------------------

    def _main(self, job: tuple[Callable[..., Any], tuple[Any, ...]] | None) -> None:
        # The idle worker's frame must hold nothing of the last job: greenlet
        # cannot collect cycles through a suspended greenlet's frames, and a
        # result parked here would live until the next command.  So the reply
        # travels through self._reply, not as a switch() argument (which the
        # suspended frame would keep on its stack).
        while job is not None:
            fn, args = job
            del job
            try:
                self._reply = (_DONE, fn(*args))
            except greenlet.GreenletExit:
                raise
            except BaseException as exc:  # handed to the driver, which re-raises
                self._reply = (_FAIL, exc)
                del exc
            del fn, args
            assert self._driver is not None
            job = self._driver.switch()

    def wait(self, awaitable: Awaitable[Any]) -> Any:
        """From inside the worker: wait for ``awaitable`` and return its result
        (or raise its exception).  The worker is suspended meanwhile and the
        event loop runs other work."""
        assert self._driver is not None and greenlet.getcurrent() is self._glet
        ok, value = self._driver.switch((_WAIT, awaitable))
        if ok:
            return value
        raise value

    # -- driver side ---------------------------------------------------------

    def _start(self) -> greenlet.greenlet:
        glet = self._glet
        if glet is None or glet.dead:
            glet = self._glet = greenlet.greenlet(self._main)
        return glet

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the worker greenlet.

        :returns: what ``fn`` returns.
        :raises: whatever ``fn`` raises; :class:`asyncio.CancelledError` if the
            calling task is cancelled meanwhile (``fn`` is unwound first).
        """
        glet = self._start()
        self._driver = greenlet.getcurrent()
        self._running = True
        kind, value = glet.switch((fn, args)) or self._take_reply()
        cancelled: BaseException | None = None
        while kind == _WAIT:
            try:
                if value is YIELD:
                    await asyncio.sleep(0)
                    result = None
                else:
                    result = await value
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    # The function's state is unknown now: let the owner close
                    # the transport so the worker unwinds, then re-raise.
                    cancelled = exc
                    if self.on_cancel is not None:
                        self.on_cancel()
                self._driver = greenlet.getcurrent()
                kind, value = glet.switch((False, exc)) or self._take_reply()
            else:
                self._driver = greenlet.getcurrent()
                kind, value = glet.switch((True, result)) or self._take_reply()
        self._running = False  # the worker is idle again: close() may end it
        if cancelled is not None:
            raise cancelled
        if kind == _FAIL:
            try:
                raise value
            finally:
                del value
        return value  # type: ignore[no-any-return]

    def _take_reply(self) -> tuple[int, Any]:
        reply = self._reply
        self._reply = None
        assert reply is not None
        return reply

    def close(self) -> None:
        """End the worker greenlet if it is idle (a no-op while it runs a
        function: the owner calls this again once that function returns)."""
        if self._running:
            return
        glet = self._glet
        self._glet = None
        if glet:  # started and not dead: idle, suspended in _main's switch
            try:
                glet.parent = greenlet.getcurrent()
                self._driver = greenlet.getcurrent()
                glet.switch(None)
            except greenlet.error:
                pass


# -- blocking-style helpers for compat layers ------------------------------------


_spawned: dict[greenlet.greenlet, GreenWorker[Any]] = {}


async def spawn(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a fresh greenlet in which :func:`await_` may be used.

    This is for code written in blocking style (greentor's API, PyMySQL after
    ``greentor_compat.mysql.patch_pymysql()``, Django's ORM).  It is a
    coroutine; the greenlet lives for this one call.

    :returns: ``fn``'s return value.
    :raises: whatever ``fn`` raises.
    """
    worker: GreenWorker[T] = GreenWorker()
    glet = worker._start()
    _spawned[glet] = worker
    try:
        return await worker.run(fn, *args)
    finally:
        _spawned.pop(glet, None)
        worker.close()


def current_worker() -> GreenWorker[Any] | None:
    """The :func:`spawn`-ed worker the caller runs in, or None."""
    return _spawned.get(greenlet.getcurrent())


def in_greenlet() -> bool:
    """True when called inside a greenlet started by :func:`spawn`, where
    :func:`await_` may wait without blocking the event loop."""
    return greenlet.getcurrent() in _spawned


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from inside a greenlet started by :func:`spawn`.

    The greenlet is suspended and the event loop keeps running; this returns the
    awaitable's result or raises its exception.

    :raises GreenletRequired: when called outside such a greenlet (for example
        from a coroutine on the event loop's own greenlet), where waiting would
        block the loop.
    """
    worker = _spawned.get(greenlet.getcurrent())
    if worker is None:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # avoid a "never awaited" warning
        raise GreenletRequired(
            "await_() must run inside a greenlet started by tornpool.green.spawn(); "
            "on the event loop's own greenlet it would block the loop"
        )
    return worker.wait(awaitable)  # type: ignore[no-any-return]
