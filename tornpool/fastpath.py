"""The fast path: commands written straight to the wire, replies parsed by the
codec as they arrive, with no PyMySQL object and no greenlet switch.

One :class:`FastPath` per connection sequences the commands on it.  A command
(:class:`~tornpool.commands.Command`) carries the bytes to send and consumes the statuses the
codec's :class:`~tornpool.codec.ResponseReader` reports while its reply
arrives.  :meth:`FastPath.on_data` is the wire's consumer: the event loop
calls it right after ``recv_into`` filled the receive buffer; it feeds the
reader, and the command resolves its caller's Future (or calls the pool back)
synchronously -- so a ``SELECT 1`` costs one write, one wake-up of the loop
and one codec call.

Commands go out one at a time, in order (:meth:`FastPath.submit`).  Besides
the caller's own (*user* commands, at most one per connection) there are
*silent* ones: the session reset a pool pipelines on release, and the drain
of result sets a caller left on the wire.  A user command queued behind a
silent one is written only once that one's reply came back clean, so it never
runs in a session that was not restored; a failed reset closes the connection
and the queued command fails with a "never sent" error that callers may
safely retry elsewhere.

Nothing here imports greenlet or tornado; PyMySQL is reached only through
:mod:`tornpool._pymysql`.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pymysql.constants import CR

from tornpool import _pymysql, codec
from tornpool.commands import SESSION_STATE_CHANGED, Command, Silent, never_sent, server_error
from tornpool.errors import ConnectionLost, InternalError
from tornpool.wire import Wire

__all__ = ["FastPath"]

NEED = codec.NEED
OK = codec.OK
RESULT = codec.RESULT
ERROR = codec.ERROR
META = codec.META
LOCAL_INFILE = codec.LOCAL_INFILE
BAD_SEQ = codec.BAD_SEQ


class FastPath:
    """Sequences commands on one connection and parses their replies.

    :param wire: the connection's receive buffer and writer.
    :param raw: the connection's PyMySQL object (column metadata).
    :param on_fatal: called with the error when the connection must close
        (protocol error, unexpected data, a cancelled command in flight).
    :param on_handoff: called with a command whose reply the fast path cannot
        read (a ``LOAD DATA LOCAL`` request): the connection finishes it in
        its worker greenlet and then calls :meth:`handoff_done`.
    """

    __slots__ = (
        "wire", "raw", "reader", "meta", "status", "dirty", "more_seq", "more_owner",
        "current", "queue", "on_fatal", "on_handoff", "_settled", "_decoders", "_encoding",
    )

    def __init__(self, wire: Wire, raw: _pymysql.GreenConnection,
                 on_fatal: Callable[[BaseException], None],
                 on_handoff: Callable[[Command], None]) -> None:
        self.wire = wire
        self.raw = raw
        self.reader = codec.ResponseReader()
        self.meta: dict[bytes, _pymysql.Shape] = {}
        #: Server status of the last reply (autocommit, in transaction...).
        self.status = 0
        #: A reply flagged SESSION_STATE_CHANGED since :meth:`mark_clean`.
        self.dirty = False
        #: Sequence id of a result set still on the wire (multi-result reply),
        #: and the cursor that may read it.
        self.more_seq: int | None = None
        self.more_owner: object = None
        self.current: Command | None = None
        self.queue: collections.deque[Command] = collections.deque()
        self.on_fatal = on_fatal
        self.on_handoff = on_handoff
        self._settled: list[asyncio.Future[None]] = []
        # what the cached shapes' converters were derived from
        self._decoders = raw.decoders
        self._encoding = raw.encoding

    # -- state -------------------------------------------------------------------

    def note_status(self, status: int) -> None:
        self.status = status
        if status & SESSION_STATE_CHANGED:
            self.dirty = True

    def mark_clean(self) -> None:
        """The session is in its baseline state from here on."""
        self.dirty = False

    @property
    def user_busy(self) -> bool:
        """A user command is in flight or queued."""
        cur = self.current
        if cur is not None and cur.user:
            return True
        return any(cmd.user for cmd in self.queue) if self.queue else False

    # -- sending -------------------------------------------------------------------

    def submit(self, cmd: Command) -> None:
        """Write ``cmd`` now, or after what is ahead of it (silent commands,
        a drain of result sets left on the wire)."""
        if self.current is None and not self.queue:
            if self.more_seq is None:
                raw = self.raw
                if raw.decoders is not self._decoders or raw.encoding != self._encoding:
                    self._check_meta()
                self.current = cmd
                self.reader.start(cmd.seq)
                wire = self.wire
                transport = wire.transport
                if not wire.dead and transport is not None and not transport.is_closing():
                    wire.written += 1
                    transport.write(cmd.packet)
                    if not transport.is_closing():
                        return
                # Not written: the link was gone, or the kernel refused the
                # bytes (asyncio then closes the transport instead of raising).
                wire.dead = True
                self.current = None
                cmd.fail(never_sent(), False)
                return
            self.queue.append(cmd)
            self._start_drain()
            return
        self.queue.append(cmd)

    def pipeline(self, packets: Sequence[bytes], on_error: Callable[[BaseException], None]) -> None:
        """Write several commands in one go (a session reset); their replies
        are checked before the next command is written."""
        self.submit(Silent(b"".join(packets), 1, len(packets), on_error))

    def read_more(self, cmd: Command) -> None:
        """Read the result set left on the wire into ``cmd`` (writes nothing)."""
        seq = self.more_seq
        assert seq is not None and self.current is None and not self.queue
        self.more_seq = None
        self.more_owner = None
        cmd.seq = seq
        self._read(cmd)

    def _start_drain(self, quiet: bool = False) -> None:
        seq = self.more_seq
        assert seq is not None
        self.more_seq = None
        self.more_owner = None
        drain = Silent(b"", seq, 1, drain=True)
        drain.quiet = quiet
        self._read(drain)

    def drain_quietly(self) -> bool:
        """Read and drop the result sets left on the wire now, ignoring an
        error among them (a pool does this on release: that error belongs
        to a lease that is gone).  False if there is nothing to drain or
        something else is in flight."""
        if self.more_seq is None or self.current is not None or self.queue:
            return False
        self._start_drain(quiet=True)
        return True

    def _check_meta(self) -> None:
        """Forget cached column shapes when the connection's converters or
        encoding were replaced (a new ``decoders`` mapping takes effect at
        once; an in-place edit of the old one does not: documented)."""
        raw = self.raw
        if raw.decoders is not self._decoders or raw.encoding != self._encoding:
            self.meta.clear()
            self._decoders = raw.decoders
            self._encoding = raw.encoding

    def _read(self, cmd: Command) -> None:
        self._check_meta()
        self.current = cmd
        self.reader.start(cmd.seq)
        if self.wire.end > self.wire.pos:
            self.on_data()

    def _send(self, cmd: Command) -> None:
        self._check_meta()
        self.current = cmd
        self.reader.start(cmd.seq)
        try:
            self.wire.write(cmd.packet)
        except OSError:
            self.current = None
            if cmd.timer is not None:
                cmd.timer.cancel()
                cmd.timer = None
            cmd.fail(never_sent(), False)
            self.fail_all(never_sent())

    def settled(self) -> asyncio.Future[None] | None:
        """None if nothing is in flight, queued or left on the wire; else a
        Future resolved once that is so (for greenlet-path commands).  It
        fails with the error of a drained later statement, as PyMySQL raises
        that at the next command."""
        if self.current is None and not self.queue and self.more_seq is None:
            return None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settled.append(fut)
        if self.current is None and not self.queue:
            self._start_drain()
        return fut

    def cancel(self, cmd: Command) -> None:
        """``cmd``'s caller gave up: drop it if not written yet; if it is in
        flight the connection must close (the server is still on it)."""
        if cmd.timer is not None:
            cmd.timer.cancel()
            cmd.timer = None
        if cmd is self.current:
            self.on_fatal(ConnectionLost(CR.CR_SERVER_LOST, "command cancelled mid-flight; the connection was closed"))
            return
        try:
            self.queue.remove(cmd)
        except ValueError:
            return
        cmd.fail(never_sent("command cancelled before it was sent"), False)

    # -- receiving -----------------------------------------------------------------------

    def on_data(self) -> None:
        """The wire's consumer: feed the reader, advance the current command."""
        cmd = self.current
        wire = self.wire
        if cmd is None:
            if self.more_seq is not None:
                return  # an announced result set arriving: it waits for nextset() or a drain
            if wire.end > wire.pos:
                # The server speaks only when spoken to, except to say goodbye
                # (shutdown, KILL, interactive timeout): this link is done.
                self.on_fatal(ConnectionLost(CR.CR_SERVER_LOST, "the server closed the idle connection"))
            return
        reader = self.reader
        meta = self.meta
        while True:
            try:
                status = reader.feed(wire.buf, wire.pos, wire.end, meta)
                wire.pos = reader.pos
                if status == NEED:
                    wire.consumed_all()
                    wire.want(reader.need)
                    return
                if status == META:
                    key = reader.meta_key
                    assert key is not None
                    meta[key] = self.raw.shape_for(key, reader.field_count)
                    continue
                if status == LOCAL_INFILE:
                    wire.consumer = _idle
                    self.on_handoff(cmd)
                    return
                if cmd.step(self, status):
                    break
            except Exception as exc:  # malformed reply, failing converter...
                self.on_fatal(_protocol_error(exc))
                return
        if wire.pos == wire.end:
            wire.pos = wire.end = 0
            wire.want_bytes = 0
        self._finish(cmd)

    def handoff_done(self, cmd: Command) -> None:
        """The worker finished ``cmd``'s reply; back to normal operation."""
        if self.current is not cmd:
            return  # the connection closed meanwhile; cmd was failed
        self.wire.consumer = self.on_data
        self._finish(cmd)

    def _finish(self, cmd: Command) -> None:
        self.current = None
        if cmd.timer is not None:
            cmd.timer.cancel()
            cmd.timer = None
        if (not cmd.user and isinstance(cmd, Silent) and cmd.drain and cmd.error is not None
                and not cmd.quiet):
            # PyMySQL raises the error of a later statement when the next
            # command drains it; so does tornpool (that command is not sent).
            if self.queue:
                self.queue.popleft().fail(cmd.error, False)
            else:
                self._wake_settled(cmd.error)
        try:
            cmd.complete()
        except Exception:  # a bug in a callback must not take the transport down
            asyncio.get_running_loop().call_exception_handler(
                {"message": "tornpool: delivering a command's result failed",
                 "exception": sys.exc_info()[1]})
        if self.queue or self._settled:
            self._advance()

    def _advance(self) -> None:
        if self.current is not None or self.wire.lost:
            return
        if self.queue:
            self._send(self.queue.popleft())
        elif self.more_seq is None and self._settled:
            self._wake_settled(None)

    def _wake_settled(self, exc: BaseException | None) -> None:
        waiters, self._settled = self._settled, []
        for fut in waiters:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

    def unusual(self, status: int) -> bool:
        """Statuses no command expects: BAD_SEQ and anything else."""
        reader = self.reader
        if status == BAD_SEQ:
            wire = self.wire
            buf, pos = wire.buf, wire.pos
            if reader.got_seq == 0 and wire.end - pos > 4 and buf[pos + 4] == 0xFF:
                # MariaDB's goodbye: an ERR packet numbered 0 (shutdown, KILL).
                size = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
                exc = server_error(bytes(wire.view[pos + 4 : pos + 4 + size]))
                raise ConnectionLost(*exc.args) from exc
            if reader.got_seq == 0:
                raise ConnectionLost(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
            raise InternalError(
                "Packet sequence number wrong - got %d expected %d" % (reader.got_seq, reader.seq)
            )
        raise InternalError("unexpected reply status %d" % status)

    # -- failure -------------------------------------------------------------------------

    def fail_all(self, exc: BaseException, current_exc: BaseException | None = None) -> None:
        """The connection is gone: fail what is in flight (with
        ``current_exc`` or ``exc``) and what is queued (never sent)."""
        cmd = self.current
        queue, self.queue = self.queue, collections.deque()
        self.current = None
        self.more_seq = None
        self.more_owner = None
        if cmd is not None:
            if cmd.timer is not None:
                cmd.timer.cancel()
                cmd.timer = None
            cmd.fail(current_exc or exc, True)
        for queued in queue:
            if queued.timer is not None:
                queued.timer.cancel()
                queued.timer = None
            queued.fail(never_sent(), False)
        self._wake_settled(exc)


def _idle() -> None:
    """The wire's consumer while the worker greenlet owns it."""


def _protocol_error(exc: Exception) -> BaseException:
    if isinstance(exc, (ValueError, IndexError)):
        error: BaseException = InternalError("malformed reply from the server: %s" % (exc,))
        error.__cause__ = exc
        return error
    return exc
