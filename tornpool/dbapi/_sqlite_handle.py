"""The proxy's side of one worker process: start, round trip, crash, restart.

A :class:`WorkerHandle` is used by one caller at a time (the slots of
:mod:`tornpool.dbapi._sqlite_slots` hand it out), so it needs no lock.

* **start**: a fresh interpreter (``sys.executable -c ...``, never a fork:
  the callers have threads) that inherits one end of a Unix socket pair and
  nothing else.  It imports only tornpool, not the application's main
  module, so no ``if __name__ == "__main__"`` guard is needed anywhere.  Its
  first message is the :class:`WorkerSpec`.  The proxy does not wait for the
  worker to boot: a request can be sent at once, and the worker's
  ``ST_READY`` is read before its reply.
* **crash**: end of file on the socket means the worker died.  The handle
  restarts it at once (booting overlaps whatever the caller does next) and
  raises :class:`~tornpool.dbapi._sqlite_errors.WorkerCrashed`.  A worker
  that died while idle refuses the next request (``EPIPE``); it is then
  restarted and the request sent to the new one: nothing ran.
* **from an event loop** (:meth:`WorkerHandle.roundtrip`): the request is
  written (a short write into the socket buffer) and the loop watches the
  socket with ``loop.add_reader``; the reply is read when it arrives.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import subprocess
import sys
from typing import Callable, List, Optional

from ._sqlite_channel import Channel
from ._sqlite_errors import ProxyClosed, WorkerCrashed, error_from_payload
from ._sqlite_protocol import (
    OP_CLOSE, PROTOCOL, ST_BOOT_ERR, ST_READY, RawReply, Request, WorkerSpec, decode, encode_request,
    split_reply,
)

__all__ = ["WorkerHandle"]

_CLOSE = encode_request((OP_CLOSE,))
_BOOT = ("import sys; sys.path[:] = %r; "
         "from tornpool.dbapi._sqlite_worker import main; main(%d)")


class WorkerHandle:
    """One worker process and its channel.

    :param spec: what the worker opens.
    :param index: position among the workers of its role (for names).
    :param executable: the Python interpreter to run (default ``sys.executable``).
    """

    def __init__(self, spec: WorkerSpec, index: int, executable: Optional[str] = None) -> None:
        self.spec = spec
        self.index = index
        self.executable = executable or sys.executable
        #: bumped on every (re)start: a transaction begun on one generation
        #: cannot continue on the next
        self.generation = 0
        #: restarts after a crash (not counting the first start)
        self.restarts = 0
        #: set by the proxy while it closes: a dying worker is not restarted
        self.closing = False
        self._process: Optional["subprocess.Popen[bytes]"] = None
        self._channel: Optional[Channel] = None
        self._booting = False
        self._awaiting = False

    @property
    def name(self) -> str:
        return "%s-%d" % (self.spec.role, self.index)

    @property
    def pid(self) -> Optional[int]:
        """The worker's process id (None before the first start)."""
        p = self._process
        return None if p is None else p.pid

    @property
    def awaiting_reply(self) -> bool:
        """True between a request written and its reply read."""
        return self._awaiting

    @staticmethod
    def prepare(request: Request) -> bytes:
        """``request`` pickled for the worker.

        :raises UnpicklableParameters: something in it does not pickle.
        """
        return encode_request(request)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start a worker process (does not wait for it to boot)."""
        parent_end, child_end = socket.socketpair()
        try:
            code = _BOOT % (_paths(), child_end.fileno())
            process = subprocess.Popen([self.executable, "-c", code], stdin=subprocess.DEVNULL,
                                       pass_fds=(child_end.fileno(),))
        except OSError as exc:
            parent_end.close()
            raise WorkerCrashed("cannot start SQLite worker %s with %s: %s"
                                % (self.name, self.executable, exc)) from exc
        except BaseException:
            parent_end.close()
            raise
        finally:
            # our copy of the child's end must go, or its death is no EOF
            child_end.close()
        channel = Channel(parent_end)
        self._process, self._channel = process, channel
        self._booting, self._awaiting = True, False
        self.generation += 1
        try:
            channel.send(pickle.dumps(self.spec, PROTOCOL))
        except OSError:
            pass  # it died at once: the next receive reports it

    def wait_ready(self) -> None:
        """Block until the worker has booted.

        :raises WorkerCrashed: it died while starting.
        :raises SQLiteError: it could not open the database (its error).
        """
        while self._booting:
            self.receive()

    def restart(self) -> None:
        """Kill the current process, if any, and start a new one."""
        self.discard()
        self.restarts += 1
        self.start()

    def discard(self) -> None:
        """Kill the process (if it still runs), reap it, close the channel."""
        process, channel = self._process, self._channel
        self._channel = None
        self._awaiting = False
        if channel is not None:
            channel.close()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self, timeout: float) -> None:
        """Ask the worker to exit (it closes its connection: the last one to
        close checkpoints the WAL), wait up to ``timeout``, then kill it."""
        process, channel = self._process, self._channel
        if channel is not None:
            try:
                channel.send(_CLOSE)
            except OSError:
                pass
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.discard()

    def kill(self) -> None:
        """SIGKILL the worker now (used by a close that timed out); whoever
        waits for its reply gets :class:`ProxyClosed`."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    # -- one round trip ---------------------------------------------------------------------

    def buffered(self) -> bool:
        """True if a whole message was read from the socket already (wait
        for no readiness then: :meth:`receive` returns it at once)."""
        return self._channel is not None and self._channel.buffered()

    def fileno(self) -> int:
        """The channel's file descriptor (readable when a message arrives)."""
        assert self._channel is not None
        return self._channel.fileno()

    def send(self, data: bytes, fresh_ok: bool = True) -> None:
        """Write one request.  A worker that died since the last call refuses
        it; it is then restarted and the request written to the new one (it
        never reached the old one, so nothing ran) -- unless ``fresh_ok`` is
        False (a transaction's statement: a new worker has no transaction).

        :raises ProxyClosed: the proxy is closing.
        :raises WorkerCrashed: the new worker refused the request too, or
            the worker was dead and ``fresh_ok`` is False (restarted; the
            request was not sent).
        """
        if self.closing:
            raise ProxyClosed("the SQLite proxy is closed")
        if self._channel is None and fresh_ok:
            self.restart()
        try:
            self._write(data)
        except OSError as exc:
            if not fresh_ok:
                self.restart()
                raise WorkerCrashed("SQLite worker %s had died; it has been restarted"
                                    % (self.name,)) from exc
            self.restart()
            try:
                self._write(data)
            except OSError as exc:
                self.discard()
                raise WorkerCrashed("SQLite worker %s refused the request: %s"
                                    % (self.name, exc)) from exc

    def _write(self, data: bytes) -> None:
        if self._channel is None:
            raise BrokenPipeError("no worker process")
        self._channel.send(data)
        self._awaiting = True

    def receive(self) -> Optional[RawReply]:
        """Read one message: the reply (returned), or the worker's boot
        message (consumed; returns None -- the reply is still to come).

        :raises WorkerCrashed: end of file: the worker died (restarted).
        :raises ProxyClosed: the worker was killed because the proxy closed.
        :raises SQLiteError: the worker could not open the database.
        """
        channel = self._channel
        if channel is None:
            raise self._crashed()
        try:
            data = channel.recv()
        except (EOFError, OSError) as exc:
            raise self._crashed() from exc
        reply = split_reply(data)
        status = reply[0]
        if status == ST_READY:
            self._booting = False
            return None
        if status == ST_BOOT_ERR:
            self._booting = False
            self.discard()
            raise error_from_payload(decode(reply[1]))
        self._awaiting = False
        return reply

    def call(self, data: bytes, fresh_ok: bool = True) -> RawReply:
        """One blocking round trip: send ``data``, return the reply."""
        self.send(data, fresh_ok)
        while True:
            reply = self.receive()
            if reply is not None:
                return reply

    def roundtrip(self, data: bytes, on_drained: Callable[[], None],
                  fresh_ok: bool = True) -> "asyncio.Future[RawReply]":
        """Send ``data`` from the running loop; the future resolves to the
        reply.  ``on_drained()`` is called once the reply (or the worker's
        death) has been read -- also when the future was cancelled meanwhile.

        :raises WorkerCrashed, ProxyClosed: at once, if the request cannot be sent.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[RawReply] = loop.create_future()
        self.send(data, fresh_ok)
        fd = self.fileno()

        def on_readable() -> None:
            nonlocal fd
            loop.remove_reader(fd)
            try:
                reply = self.receive()
                while reply is None:  # the worker's boot message; the reply follows
                    if not self.buffered():
                        fd = self.fileno()
                        loop.add_reader(fd, on_readable)
                        return
                    reply = self.receive()
            except Exception as exc:
                on_drained()
                if not fut.done():
                    fut.set_exception(exc)
                return
            on_drained()
            if not fut.done():
                fut.set_result(reply)

        loop.add_reader(fd, on_readable)
        return fut

    def _crashed(self) -> Exception:
        process = self._process
        booting = self._booting
        self.discard()
        code = None if process is None else process.returncode
        if self.closing:
            return ProxyClosed("the SQLite proxy was closed while the call ran")
        when = ("while starting (see its stderr)" if booting else "during the call")
        exc = WorkerCrashed("SQLite worker %s (pid %s) died %s, exit code %s; it has been "
                            "restarted" % (self.name, self.pid, when, code))
        try:
            self.restart()
        except WorkerCrashed as again:  # cannot start one now; the next call tries again
            return again
        return exc

    def __repr__(self) -> str:
        state = ("down" if self._channel is None else "booting" if self._booting else
                 "busy" if self._awaiting else "idle")
        return "<WorkerHandle %s pid=%s %s gen=%d>" % (self.name, self.pid, state, self.generation)


def _paths() -> List[str]:
    """The parent's import path, for the child (as multiprocessing's spawn
    passes it too): tornpool is found wherever the parent found it."""
    return [p for p in sys.path if isinstance(p, str)]
