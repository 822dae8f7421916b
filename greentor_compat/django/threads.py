"""The blocking face of the backend's pool, for plain threads.

A thread without a running event loop (a WSGI worker, a management command,
a test that starts threads) cannot use a connection on the bridge itself: its
reads must run on an event loop.  So the pool keeps the connections threads
use on a private loop of its own (:class:`LoopThread`, one per process, in a
daemon thread started on first use) and hands the thread a proxy,
:class:`ThreadConnection`: every call that talks to the server -- and the
cursor's -- runs there in a greenlet of its own, and blocks only the calling
thread.  Attributes and calls that do no I/O (``escape``, ``encoders``, a
buffered cursor's ``fetchone`` ...) go straight to the PyMySQL objects.

The private loop is never the application's loop, so a thread that needs a
connection while the application's loop waits for that thread (a test joining
it, say) cannot deadlock.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from pymysql.cursors import SSCursor
from tornpool import green as tgreen
from tornpool.errors import WrongEventLoop

__all__ = ["LoopThread", "ThreadConnection", "ThreadCursor", "private_loop"]

T = TypeVar("T")

#: PyMySQL ``Connection`` methods that talk to the server.
CONNECTION_IO = frozenset({
    "autocommit", "begin", "commit", "rollback", "ping", "select_db", "query",
    "next_result", "show_warnings", "kill", "set_character_set", "set_charset", "close",
})
#: PyMySQL cursor methods that (may) talk to the server.
CURSOR_IO = frozenset({"execute", "executemany", "callproc", "nextset", "close"})
#: ...and, on an unbuffered cursor, these too.
UNBUFFERED_IO = frozenset({"fetchone", "fetchmany", "fetchall", "fetchall_unbuffered", "scroll"})


class LoopThread:
    """An event loop running in a daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (started now if it is not running yet)."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return loop

    def started(self) -> asyncio.AbstractEventLoop | None:
        """The loop if it was started, else None (starts nothing)."""
        return self._loop

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a greenlet on the loop, blocking this thread
        until it returns; its result, or what it raised.

        :raises WrongEventLoop: called from the loop's own thread.
        """
        loop = self.loop
        if threading.current_thread() is self._thread:
            raise WrongEventLoop(0, "%s: a blocking call from the pool's own loop thread "
                                    "would deadlock" % self.name)
        return asyncio.run_coroutine_threadsafe(tgreen.spawn(fn, *args), loop).result()


_private = LoopThread("greentor-django-pool")


def private_loop() -> LoopThread:
    """The process's loop for connections that threads use."""
    return _private


class ThreadCursor:
    """A PyMySQL cursor seen from a thread (see the module docstring)."""

    __slots__ = ("raw", "runner", "_io")

    def __init__(self, raw: Any, runner: LoopThread) -> None:
        self.raw = raw
        self.runner = runner
        self._io = CURSOR_IO | UNBUFFERED_IO if isinstance(raw, SSCursor) else CURSOR_IO

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name in self._io:
            return functools.partial(self.runner.call, attr)
        return attr

    def __iter__(self) -> Iterator[Any]:
        return iter(self.__getattr__("fetchone"), None)

    def __enter__(self) -> ThreadCursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.__getattr__("close")()


class ThreadConnection:
    """A pooled PyMySQL connection seen from a thread; :attr:`raw` is the
    connection, :attr:`owner` the pool that lent it."""

    __slots__ = ("raw", "runner", "owner", "__weakref__")

    def __init__(self, raw: Any, runner: LoopThread, owner: Any) -> None:
        self.raw = raw
        self.runner = runner
        self.owner = owner

    def cursor(self, cursor: Any = None) -> ThreadCursor:
        raw = self.raw.cursor(cursor) if cursor is not None else self.raw.cursor()
        return ThreadCursor(raw, self.runner)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name in CONNECTION_IO:
            return functools.partial(self.runner.call, attr)
        return attr

    def __repr__(self) -> str:
        return "<thread face of %r>" % (self.raw,)
