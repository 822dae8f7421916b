"""Futures the Momoko facade returns (the loop helpers serve the TorMySQL
facade too).

Momoko's methods return Futures, and its users keep them (``f1 =
db.execute(...); yield [f1, f2]; f1.result()``) or call them before the loop
runs (``future = db.connect(); ioloop.start()``).  So every facade method
returns an :class:`asyncio.Future` bound to the running loop -- or, when no
loop runs yet, to the loop the application created (``IOLoop.current()``),
where a task waits for the loop to start.

Errors are translated on the way: tornpool's
:class:`~tornpool.errors.PoolUnavailable` becomes Momoko's
:class:`~tornpool.momoko.exceptions.DatabaseNotAvailable`, and a malformed
placeholder (a plain ``ValueError`` from ``%`` formatting) becomes
``ProgrammingError`` as psycopg2 raises it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from tornpool.errors import MySQLError, PoolUnavailable, ProgrammingError
from tornpool.momoko.exceptions import DatabaseNotAvailable

__all__ = ["app_loop", "spawn", "failed", "relay", "translate", "finish"]

T = TypeVar("T")


def app_loop() -> asyncio.AbstractEventLoop:
    """The running event loop, else the one the application set as current.

    :raises RuntimeError: there is neither (create the IOLoop first).
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        return asyncio.get_event_loop()
    except RuntimeError:
        raise RuntimeError("tornpool.momoko needs an event loop: call it from a coroutine, "
                           "or create the IOLoop first (IOLoop.current())") from None


def translate(exc: BaseException) -> BaseException:
    """Momoko's exception for one raised by tornpool (see the module docstring)."""
    if isinstance(exc, PoolUnavailable) and not isinstance(exc, DatabaseNotAvailable):
        new: BaseException = DatabaseNotAvailable(0, "No database connection available: %s" % (
            exc.__cause__ or exc,))
    elif isinstance(exc, ValueError) and not isinstance(exc, MySQLError):
        new = ProgrammingError(0, str(exc))
    else:
        return exc
    new.__cause__ = exc
    return new


async def _translated(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except Exception as exc:
        new = translate(exc)
        if new is exc:
            raise
        raise new from exc


def spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coro`` as a task (errors translated); returns its Future."""
    return app_loop().create_task(_translated(coro))


def failed(exc: BaseException) -> asyncio.Future[Any]:
    """A Future already failed with (the translation of) ``exc``."""
    fut: asyncio.Future[Any] = app_loop().create_future()
    fut.set_exception(translate(exc))
    return fut


def relay(source: asyncio.Future[Any], make: Callable[[Any], T],
          loop: asyncio.AbstractEventLoop,
          errors: Callable[[BaseException], BaseException] = translate) -> asyncio.Future[T]:
    """A Future that resolves to ``make(result)`` of ``source`` (its errors
    passed through ``errors``: Momoko's translation by default); cancelling
    it cancels ``source``."""
    out: asyncio.Future[T] = loop.create_future()

    def done(src: asyncio.Future[Any]) -> None:
        if out.done():
            return
        if src.cancelled():
            out.cancel()
            return
        exc = src.exception()
        if exc is not None:
            out.set_exception(errors(exc))
            return
        try:
            out.set_result(make(src.result()))
        except Exception as err:
            out.set_exception(err)

    def forward_cancel(o: asyncio.Future[T]) -> None:
        if o.cancelled():
            source.cancel()

    source.add_done_callback(done)
    out.add_done_callback(forward_cancel)
    return out


def runs_to_the_end_now(loop: asyncio.AbstractEventLoop | None) -> bool:
    """True if :func:`finish` on ``loop`` would run its coroutine to the end
    before returning: ``loop`` exists, is open, and is idle (no loop runs in
    this thread).  The caller is then blocked, so nothing it holds can be
    given back meanwhile -- a clean-up must not wait for that."""
    try:
        asyncio.get_running_loop()
        return False
    except RuntimeError:
        pass
    return loop is not None and not loop.is_closed() and not loop.is_running()


def finish(make: Callable[[], Coroutine[Any, Any, None]],
           loop: asyncio.AbstractEventLoop | None) -> asyncio.Future[None] | None:
    """Run a clean-up coroutine for a synchronous ``close()``.  When ``loop``
    runs in this thread: as a task, returned so that it can be awaited.  When
    ``loop`` exists but is idle: to the end, right now (the task returned is
    done).  When there is no loop, or it is closed, nothing can be open:
    None."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and (loop is None or loop is running):
        return running.create_task(make())
    if loop is None or loop.is_closed() or loop.is_running():
        return None
    task = loop.create_task(make())
    loop.run_until_complete(asyncio.wait([task]))
    return task
