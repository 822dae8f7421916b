"""The greenlet path: PyMySQL, in the connection's worker greenlet, for what
the fast path does not cover.

``executemany`` (PyMySQL batches ``INSERT ... VALUES``), ``callproc``,
streaming cursors and the answer to a ``LOAD DATA LOCAL INFILE`` request run
PyMySQL's own code, unchanged, over the connection's
:class:`~tornpool.green.GreenSocket`.  :class:`GreenPath` runs such a command
once the fast path is idle, keeps the fast path off the wire meanwhile, and
hands back what PyMySQL left: the server status, result sets still on the
wire, an unfinished stream.

The command rules are the connection's: one command at a time, a deadline
per command that closes the connection when it passes, a cancelled or
failed command that may have left a reply half read closes it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pymysql import err

from tornpool import _pymysql
from tornpool.commands import Command, Reply, Statement
from tornpool.cursors import Cursor, SSCursor
from tornpool.errors import CommandTimeout, ConnectionLost, NotSupportedError, command_timeout
from tornpool.fastpath import FastPath
from tornpool.green import GreenWorker
from tornpool.wire import Wire

__all__ = ["GreenPath"]

T = TypeVar("T")


def _idle() -> None:
    """The wire's consumer while PyMySQL owns it."""


class GreenPath:
    """Runs PyMySQL commands for one connection; see the module docstring.

    :param problem: ``(continuation) -> error or None``: why a command cannot
        start now (closed, busy, wrong loop); a continuation of a stream may
        run while the stream keeps the connection busy.
    :param terminate: closes the connection at once.
    :param abandon: records that a command was cut off mid-flight (the
        server may still be running it).
    """

    __slots__ = ("raw", "wire", "fp", "worker", "_problem", "_terminate", "_abandon",
                 "command_timeout", "busy", "streaming", "timed_out")

    def __init__(
        self,
        raw: _pymysql.GreenConnection,
        wire: Wire,
        fp: FastPath,
        worker: GreenWorker[Any],
        problem: Callable[[bool], BaseException | None],
        terminate: Callable[[], None],
        abandon: Callable[[], None],
        command_timeout: float | None,
    ) -> None:
        self.raw = raw
        self.wire = wire
        self.fp = fp
        self.worker = worker
        self._problem = problem
        self._terminate = terminate
        self._abandon = abandon
        self.command_timeout = command_timeout
        #: A command runs in the worker.
        self.busy = False
        #: A streaming result is unfinished (its rows belong to PyMySQL).
        self.streaming = False
        #: The timeout that closed the connection mid-command, if any.
        self.timed_out: float | None = None

    # -- running -------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], args: tuple[Any, ...], timeout: float | None,
                  continuation: bool = False, stream: bool = False) -> T:
        """Run ``fn(*args)`` in the worker once the fast path is idle.

        :returns: (resolves to) what ``fn`` returns.
        :raises: what ``fn`` raises; :class:`ConnectionLost` after a fatal
            error; :class:`CommandTimeout` once ``timeout`` passed.
        """
        problem = self._problem(continuation)
        if problem is not None:
            raise problem
        self.busy = True
        wire, fp, raw = self.wire, self.fp, self.raw
        raw.server_status = fp.status  # PyMySQL starts from what the fast path saw last
        try:
            settled = fp.settled()
            if settled is not None:
                await settled
            if self.streaming and not continuation:
                self.streaming = False
                await self._in_worker(raw.finish_streaming, (), None)
            return await self._in_worker(fn, args, timeout)
        finally:
            self.busy = False
            fp.note_status(raw.server_status)
            # A stream's later result sets stay PyMySQL's (its cursor's
            # nextset() reads them).
            self.streaming = raw.streaming or (stream and raw.more_results)
            if not self.streaming:
                # Data arriving while idle belongs to the fast path again (a
                # streaming result's rows belong to PyMySQL until it ends).
                if not wire.lost:
                    wire.consumer = fp.on_data
                if raw.more_results:
                    fp.more_seq = raw.next_seq
                raw.forget_result()

    async def _in_worker(self, fn: Callable[..., T], args: tuple[Any, ...],
                         timeout: float | None) -> T:
        if timeout is None:
            timeout = self.command_timeout
        handle = None
        if timeout is not None:
            handle = asyncio.get_running_loop().call_later(timeout, self._expire, timeout)
        wire = self.wire
        written = wire.written
        wire.consumer = _idle
        try:
            result: T = await self.worker.run(fn, *args)
            return result
        except err.MySQLError as exc:
            if self.timed_out is not None:
                raise self.timeout_error() from exc
            if _pymysql.is_fatal(exc):
                if wire.written != written:
                    self._abandon()
                self._terminate()
                if isinstance(exc, err.OperationalError) and not isinstance(exc, ConnectionLost):
                    raise ConnectionLost(*exc.args) from exc
            raise
        except BaseException as exc:
            # Not a server error: a converter or the protocol code failed, or
            # the caller was cancelled.  If the command reached the server,
            # its reply may be half read: the connection cannot be trusted.
            if self.timed_out is not None:
                raise self.timeout_error() from exc
            if wire.written != written or isinstance(exc, asyncio.CancelledError):
                self._abandon()
                self._terminate()
            raise
        finally:
            if handle is not None:
                handle.cancel()
            if not self.raw.link_open:
                # Closed during the command: end the (now idle) worker
                # greenlet, whose frames the garbage collector cannot reclaim.
                self.worker.close()

    def _expire(self, timeout: float) -> None:
        self.timed_out = timeout
        self._abandon()
        self._terminate()

    def timeout_error(self) -> CommandTimeout:
        return command_timeout(self.timed_out or 0.0)

    # -- commands ----------------------------------------------------------------------

    def _cursor_from(self, pycur: Any, cls: Any, handle: Any) -> Cursor:
        # PyMySQL's cursor of the same kind shaped the rows already (dicts
        # for a dict cursor): shape=None tells the cursor to take them as is.
        reply = Reply(_pymysql.cursor_rows(pycur), pycur.description, None, pycur.rowcount,
                      pycur.lastrowid, pycur.warning_count)
        cur: Cursor = cls(handle, reply)
        if self.fp.more_seq is not None:
            self.fp.more_owner = cur
        return cur

    @staticmethod
    def _buffered(cls: Any) -> Any:
        if cls.streaming:
            raise NotSupportedError(0, "executemany() and callproc() need a buffered cursor class")
        return cls

    async def executemany(self, query: str, seq_of_args: Iterable[Any], timeout: float | None,
                          cls: Any, handle: Any) -> Cursor:
        """PyMySQL's ``executemany``; resolves to a buffered cursor."""
        pycur = self.raw.cursor(self._buffered(cls).raw_class)
        await self.run(pycur.executemany, (query, list(seq_of_args)), timeout)
        return self._cursor_from(pycur, cls, handle)

    async def callproc(self, procname: str, args: Sequence[Any], timeout: float | None,
                       cls: Any, handle: Any) -> Cursor:
        """PyMySQL's ``callproc``; resolves to a buffered cursor on the first
        result set (later ones stay on the wire for ``nextset``)."""
        pycur = self.raw.cursor(self._buffered(cls).raw_class)
        await self.run(pycur.callproc, (procname, tuple(args)), timeout)
        return self._cursor_from(pycur, cls, handle)

    async def execute_streaming(self, query: str | bytes, args: Any, timeout: float | None,
                                cls: Any, handle: Any) -> SSCursor:
        """Start a streaming result; resolves to the streaming cursor."""
        pycur = self.raw.cursor(cls.raw_class)
        await self.run(pycur.execute, (query, args), timeout, stream=True)
        cursor: SSCursor = cls(handle, pycur)
        return cursor

    def stream_call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Any:
        """For streaming cursors: ``fn(*args)`` (a PyMySQL cursor method) as a
        continuation of the stream.  Resolves to its result."""
        return self.run(fn, args, None, continuation=True, stream=True)

    async def finish_stream_then(self, start: Callable[[], None], fail: Callable[[BaseException], None]) -> None:
        """Read and drop the rest of an unfinished stream, then ``start()``
        the fast-path command that waited for it (or ``fail`` it)."""
        try:
            await self.run(self.raw.finish_streaming, (), None, continuation=True)
        except BaseException as exc:
            fail(exc)
            return
        start()

    def local_infile(self, cmd: Command) -> None:
        """The fast path met a ``LOAD DATA LOCAL`` request in ``cmd``'s reply:
        PyMySQL answers it in the worker, then the fast path carries on."""
        asyncio.ensure_future(self._local_infile(cmd))

    async def _local_infile(self, cmd: Command) -> None:
        assert isinstance(cmd, Statement)
        raw, fp = self.raw, self.fp
        cls = cmd.cursor_class if cmd.cursor_class not in (None, Reply) else Cursor
        pycur = raw.cursor(cls.raw_class)
        try:
            await self._in_worker(raw.finish_local_infile, (fp.reader.seq, pycur), None)
        except Exception as exc:
            cmd.error = exc
        else:
            fp.note_status(raw.server_status)
            cmd.replies = [Reply(None, None, None, pycur.rowcount, pycur.lastrowid,
                                 pycur.warning_count)]
            cmd.finish(fp)
        finally:
            raw.forget_result()
        fp.handoff_done(cmd)

