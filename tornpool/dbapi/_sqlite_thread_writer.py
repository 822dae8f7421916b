"""The in-process writer of the SQLite proxy (``writer="thread"``).

A :class:`ThreadWriter` holds the writer's sqlite3 connection in the
calling process -- opened as a writer process opens its own (WAL, the
``synchronous`` level, ``init_sql``, ``initializer``, ``busy_timeout``),
with ``check_same_thread=False`` -- and runs requests on it through the same
:class:`~tornpool.dbapi._sqlite_session.Session` a worker process runs.  The
writer's slots hand it to one caller at a time, as they hand out a worker
process, so the connection never sees two requests at once.

* **blocking** (:meth:`ThreadWriter.call`): the request runs in the caller's
  own thread -- no thread hop, no socket, no pickling.  ``sqlite3`` releases
  the GIL while a statement steps and while a commit syncs, so other
  threads go on meanwhile.
* **from an event loop** (:meth:`ThreadWriter.roundtrip`): the request runs
  on a thread of the writer's own (started at the first such call; a
  commit with ``synchronous=FULL`` is an fsync, which must not stall the
  loop), and the loop's future is resolved with ``call_soon_threadsafe``.

Requests and results are handed over as they are, never pickled: a
parameter sqlite3 cannot bind raises sqlite3's ``ProgrammingError`` (as
``SQLiteProgrammingError``) instead of ``UnpicklableParameters``.

There is no process to crash apart from the caller's own, so there is
nothing to restart after a crash.  An interrupted call (``KeyboardInterrupt``
while a request ran) leaves the handle ``awaiting_reply``, and the proxy
then restarts it: the connection is closed (SQLite rolls back what was
open) and a new one opened, so a transaction begun before is lost, as with
a restarted process.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable, Optional, Tuple

from ._sqlite_errors import ProxyClosed, error_from_payload
from ._sqlite_protocol import ST_ERR, ST_OK, Reply, Request, WorkerSpec, settle_reply
from ._sqlite_session import Session, error_payload, open_connection

__all__ = ["ThreadWriter"]

#: one request for the writer thread: request, loop, future, on_drained
_Job = Tuple[Request, asyncio.AbstractEventLoop, "asyncio.Future[Reply]", Callable[[], None]]

#: how long :meth:`ThreadWriter.kill` waits for an interrupted statement to end
_KILL_WAIT = 2.0


class ThreadWriter:
    """The writer's connection in this process, used by one caller at a time.

    :param spec: what the connection opens (role "writer").
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.index = 0
        self.generation = 0
        self.restarts = 0
        self.closing = False
        self._session: Optional[Session] = None
        #: held while a request runs on the connection (and while it closes)
        self._running = threading.Lock()
        #: guards starting the writer thread
        self._lock = threading.Lock()
        self._awaiting = False
        self._jobs: Optional["queue.SimpleQueue[Optional[_Job]]"] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def name(self) -> str:
        return "writer-thread"

    @property
    def pid(self) -> Optional[int]:
        """None: the writer has no process of its own (it runs in this one)."""
        return None

    @property
    def awaiting_reply(self) -> bool:
        """True while a request runs (or one was interrupted)."""
        return self._awaiting

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return self._session is not None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open the connection (blocks for as long as that takes: a few ms).

        :raises SQLiteError: the file cannot be opened or configured (the
            ``SQLite*`` twin of sqlite3's error, as a writer process reports it).
        """
        try:
            db, guard = open_connection(self.spec)
        except Exception as exc:
            raise error_from_payload(error_payload(exc)) from exc
        with self._running:
            self._session = Session(db, guard)
            self.generation += 1
            self._awaiting = False

    def wait_ready(self) -> None:
        """Nothing to wait for: :meth:`start` opened the connection."""

    def restart(self) -> None:
        """Close the connection (what was open rolls back) and open a new one."""
        self.discard()
        self.restarts += 1
        self.start()

    def discard(self) -> None:
        """Close the connection, if open."""
        self._close()

    def stop(self, timeout: float) -> None:
        """Stop the writer thread (if started) and close the connection; the
        last connection to close checkpoints the WAL."""
        jobs, thread = self._jobs, self._thread
        if jobs is not None and thread is not None:
            jobs.put(None)
            thread.join(timeout)
        self._close()

    def kill(self) -> None:
        """Interrupt a running statement (its caller gets ProxyClosed), then
        close the connection once the statement has ended (or, if it does not
        end within a moment, when it does)."""
        self.closing = True
        session = self._session
        if session is not None:
            session.db.interrupt()
        if self._running.acquire(timeout=_KILL_WAIT):
            self._running.release()
            self._close()
        jobs = self._jobs
        if jobs is not None:
            jobs.put(None)

    def _close(self) -> None:
        with self._running:
            session, self._session = self._session, None
            self._awaiting = False
        if session is not None:
            session.db.close()

    # -- one request -------------------------------------------------------------------------

    @staticmethod
    def prepare(request: Request) -> Request:
        """``request`` as it is: nothing leaves the process."""
        return request

    def call(self, data: Request, fresh_ok: bool = True) -> Reply:
        """Run ``data`` on the connection in the calling thread; its reply.

        :raises ProxyClosed: the proxy is closing (or closed while it ran:
            the statement was interrupted and rolled back).
        :raises SQLiteError: the connection was closed by a restart that
            could not open a new one, and it still cannot.
        """
        if self._session is None and not self.closing:
            self.restarts += 1
            self.start()
        with self._running:
            session = self._session
            if self.closing or session is None:
                raise ProxyClosed("the SQLite proxy is closed")
            self._awaiting = True
            reply = session.handle(data)  # a BaseException leaves _awaiting set
            self._awaiting = False
            killed = self.closing
            if killed:  # kill() is waiting for us: the connection is ours to close
                self._session = None
        if killed:
            session.db.close()
            reply = _closed_if_interrupted(reply)
            if reply[0] == ST_ERR:
                raise error_from_payload(reply[1])
        return reply

    def roundtrip(self, data: Request, on_drained: Callable[[], None],
                  fresh_ok: bool = True) -> "asyncio.Future[Reply]":
        """Run ``data`` on the writer thread; the future (of the running loop)
        resolves to its reply.  ``on_drained()`` runs on the loop once the
        request has finished.

        :raises ProxyClosed: at once, if the proxy is closing.
        """
        loop = asyncio.get_running_loop()
        if self.closing:
            raise ProxyClosed("the SQLite proxy is closed")
        fut: asyncio.Future[Reply] = loop.create_future()
        self._queue().put((data, loop, fut, on_drained))
        return fut

    def _queue(self) -> "queue.SimpleQueue[Optional[_Job]]":
        jobs = self._jobs
        if jobs is not None:
            return jobs
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._serve, args=(self._jobs,),
                                                name="tornpool-sqlite-writer", daemon=True)
                self._thread.start()
            return self._jobs

    def _serve(self, jobs: "queue.SimpleQueue[Optional[_Job]]") -> None:
        """The writer thread: run each job, hand its outcome to its loop."""
        while True:
            job = jobs.get()
            if job is None:
                return
            data, loop, fut, on_drained = job
            reply: Optional[Reply] = None
            error: Optional[BaseException] = None
            try:
                reply = self.call(data)
            except BaseException as exc:  # ProxyClosed; delivered to the caller
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, fut, reply, error, on_drained)
            except RuntimeError:  # that loop is closed: nobody awaits; free the writer
                try:
                    on_drained()
                except RuntimeError:
                    pass

    def __repr__(self) -> str:
        state = ("down" if self._session is None else "busy" if self._awaiting else "idle")
        return "<ThreadWriter %s gen=%d>" % (state, self.generation)


_CLOSED: Reply = (ST_ERR, ("Closed", "the SQLite proxy was closed while the call ran; the "
                             "statement was interrupted and rolled back", None, None))


def _closed_if_interrupted(reply: Reply) -> Reply:
    """After a kill: a statement that the interrupt stopped reports
    ProxyClosed (kind "Closed") -- itself, or as a member of a batch."""
    status, body = reply
    if status == ST_ERR and body[3] == "SQLITE_INTERRUPT":
        return _CLOSED
    if status == ST_OK and isinstance(body, list):  # a batch: its members' replies
        return (ST_OK, [_closed_if_interrupted(m) for m in body])
    return reply


def _settle(fut: "asyncio.Future[Reply]", reply: Optional[Reply], error: Optional[BaseException],
            on_drained: Callable[[], None]) -> None:
    on_drained()
    settle_reply(fut, reply, error)
