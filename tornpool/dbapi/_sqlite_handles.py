"""What the proxy needs of a worker handle, whichever kind it is.

Two kinds satisfy :class:`Handle`:

* :class:`~tornpool.dbapi._sqlite_handle.WorkerHandle` -- a worker process
  behind a socket (every reader; the writer with ``writer="process"``);
* :class:`~tornpool.dbapi._sqlite_thread_writer.ThreadWriter` -- the
  writer's connection in the calling process (``writer="thread"``).

The slots (:mod:`tornpool.dbapi._sqlite_slots`) hand a handle to one caller
at a time; the caller prepares its request (:meth:`Handle.prepare`: pickled
for a process, as it is for the in-process writer), then runs it blocking
(:meth:`Handle.call`) or from an event loop (:meth:`Handle.roundtrip`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional, Protocol

from ._sqlite_protocol import AnyReply, Request, WorkerSpec

__all__ = ["Handle"]


class Handle(Protocol):
    """One worker (a process, or the in-process writer), used by one caller at a time."""

    #: what its connection opens
    spec: WorkerSpec
    #: position among the workers of its role
    index: int
    #: bumped on every (re)start: a transaction begun on one generation
    #: cannot continue on the next
    generation: int
    #: restarts after a crash or an interrupted call (not the first start)
    restarts: int
    #: set by the proxy while it closes: the handle runs nothing more
    closing: bool

    @property
    def pid(self) -> Optional[int]:
        """The worker's process id; None before its first start, and always
        for the in-process writer (it has no process of its own)."""

    @property
    def awaiting_reply(self) -> bool:
        """True while a request runs whose reply nobody has taken yet (after
        an interruption: the handle is then restarted before anyone reuses it)."""

    def prepare(self, request: Request) -> Any:
        """``request`` made ready for this kind of handle (it may be prepared
        by its caller before the handle is taken).

        :raises UnpicklableParameters: a worker process cannot be sent it.
        """

    def call(self, data: Any, fresh_ok: bool = True) -> AnyReply:
        """Run one prepared request, blocking the calling thread; its reply.

        ``fresh_ok=False`` (a transaction's statement): never run it on a
        worker started since the last call.

        :raises WorkerCrashed, ProxyClosed: the worker died / the proxy closed.
        """

    def roundtrip(self, data: Any, on_drained: Callable[[], None],
                  fresh_ok: bool = True) -> "asyncio.Future[AnyReply]":
        """Run one prepared request without blocking the running loop; the
        future resolves to its reply.  ``on_drained()`` is called on the loop
        once the request has finished (also when the future was cancelled
        meanwhile); only then may the handle serve someone else.

        :raises WorkerCrashed, ProxyClosed: at once, if it cannot be sent.
        """

    def start(self) -> None:
        """Start the worker (a process: without waiting for its boot)."""

    def wait_ready(self) -> None:
        """Block until the worker has opened the database.

        :raises SQLiteError: it could not (its error).
        """

    def restart(self) -> None:
        """Throw the current worker away and start a fresh one."""

    def discard(self) -> None:
        """Throw the current worker away (its connection closes)."""

    def stop(self, timeout: float) -> None:
        """Close the idle worker's connection (the last one to close
        checkpoints the WAL), waiting up to ``timeout`` seconds."""

    def kill(self) -> None:
        """Stop a busy worker now (a close that timed out): its caller gets
        :class:`~tornpool.dbapi._sqlite_errors.ProxyClosed`."""
