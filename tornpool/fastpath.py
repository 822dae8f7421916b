"""The fast path: commands written straight to the wire, replies parsed by the
codec as they arrive, with no PyMySQL object and no greenlet switch.

One :class:`FastPath` per connection sequences the commands on it.  A command
(:class:`Command`) carries the bytes to send and consumes the statuses the
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
from typing import Any, Protocol, TypeVar

from pymysql.constants import CR, SERVER_STATUS

from tornpool import _pymysql, codec
from tornpool.errors import ConnectionLost, InternalError
from tornpool.wire import Wire

__all__ = [
    "FastPath",
    "Command",
    "Reply",
    "Statement",
    "Silent",
    "CommandFuture",
    "FutureStatement",
    "never_sent",
    "COM_QUERY",
    "COM_PING",
    "COM_INIT_DB",
    "SESSION_STATE_CHANGED",
]

COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_PING = 0x0E

MORE_RESULTS = SERVER_STATUS.SERVER_MORE_RESULTS_EXISTS
#: Server status flag: the statement changed session state (needs
#: CLIENT_SESSION_TRACK and ``session_track_state_change``).
SESSION_STATE_CHANGED = 0x4000

T = TypeVar("T")

NEED = codec.NEED
OK = codec.OK
RESULT = codec.RESULT
ERROR = codec.ERROR
META = codec.META
LOCAL_INFILE = codec.LOCAL_INFILE
BAD_SEQ = codec.BAD_SEQ


def never_sent(message: str = "MySQL server has gone away") -> ConnectionLost:
    """The error of a command that was never written: 2006, which the pool
    treats as safe to retry on another connection."""
    return ConnectionLost(CR.CR_SERVER_GONE_ERROR, message)


class Reply:
    """One result of a statement: what a buffered cursor shows for it."""

    __slots__ = ("rows", "description", "shape", "rowcount", "lastrowid", "warning_count")

    def __init__(self, rows: Any, description: Any, shape: Any, rowcount: int | None,
                 lastrowid: int | None, warning_count: int) -> None:
        self.rows = rows
        self.description = description
        #: What the column block decoded to (``dict_keys`` for dict cursors).
        self.shape = shape
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.warning_count = warning_count


class Command:
    """A command on the wire and the consumer of its reply.

    Subclasses implement :meth:`step` (called for every status of the reader
    except NEED and META, which the fast path handles), :meth:`complete`
    (deliver the outcome, called once the fast path is free for the next
    command) and :meth:`fail`.
    """

    __slots__ = ("packet", "seq", "user", "timer")

    def __init__(self, packet: bytes, seq: int, user: bool) -> None:
        #: Bytes to write; empty for a command that only reads (next result set).
        self.packet = packet
        #: Sequence id of the reply's first packet.
        self.seq = seq
        #: A user command (counts as ``busy``) rather than a silent one.
        self.user = user
        #: The command's deadline timer, cancelled when it ends.
        self.timer: asyncio.TimerHandle | None = None

    def step(self, fp: FastPath, status: int) -> bool:
        """Handle a reader status; True when the reply is complete."""
        raise NotImplementedError

    def complete(self) -> None:
        """Deliver the outcome."""

    def fail(self, exc: BaseException, sent: bool) -> None:
        """The command failed before completing; ``sent`` tells whether it
        reached the wire."""
        raise NotImplementedError


class Statement(Command):
    """A statement (``COM_QUERY``, ``COM_PING``, ``COM_INIT_DB``) whose reply
    becomes a cursor of ``cursor_class`` on ``handle`` (None: the outcome is
    None; :class:`Reply`: the bare reply, for :meth:`Cursor.nextset`).

    With ``collect`` (a class attribute) every result set of a multi-result
    reply is read before completing -- the pool's statements do this, since
    their connection is gone before the caller could ask for the next set;
    otherwise later sets stay on the wire for :meth:`Cursor.nextset`.
    Subclasses implement :meth:`resolve`.
    """

    collect = False
    __slots__ = ("cursor_class", "handle", "replies", "error", "result")

    def __init__(self, packet: bytes, seq: int, cursor_class: Any, handle: Any) -> None:
        # (no super().__init__: this runs once per query)
        self.packet = packet
        self.seq = seq
        self.user = True
        self.timer: asyncio.TimerHandle | None = None
        self.cursor_class = cursor_class
        self.handle = handle
        #: Every reply of a multi-result reply (None for the usual single one).
        self.replies: list[Reply] | None = None
        self.error: BaseException | None = None
        self.result: Any = None

    def step(self, fp: FastPath, status: int) -> bool:
        reader = fp.reader
        if status == RESULT or status == OK:
            server_status = reader.server_status
            fp.status = server_status
            if server_status & SESSION_STATE_CHANGED:
                fp.dirty = True
            if server_status & MORE_RESULTS or self.replies is not None:
                return self._more(fp, status, server_status)
            # The usual case: one result, straight into the cursor.
            cls = self.cursor_class
            if cls is None:
                return True
            try:
                if status == RESULT:
                    shape = reader.shape
                    rows = tuple(reader.rows)  # type: ignore[arg-type]
                    if cls is Reply:
                        self.result = Reply(rows, shape.description, shape, len(rows), None,
                                            reader.warning_count)
                    else:
                        self.result = cls.from_result(self.handle, rows, shape, len(rows), None,
                                                      reader.warning_count, self.collect)
                elif cls is Reply:
                    self.result = Reply(None, None, None, reader.affected_rows, reader.insert_id,
                                        reader.warning_count)
                else:
                    self.result = cls.from_result(self.handle, None, None, reader.affected_rows,
                                                  reader.insert_id, reader.warning_count,
                                                  self.collect)
            except Exception as exc:  # a dict cursor over odd rows, say
                self.error = exc
            return True
        if status == ERROR:
            # The first result failed: the statement failed.  A later one
            # failed: that surfaces at nextset(), as in PyMySQL.
            self.error = server_error(reader.error)
            if self.replies:
                self.finish(fp)
            return True
        return fp.unusual(status)

    def _more(self, fp: FastPath, status: int, server_status: int) -> bool:
        """A reply of a multi-result reply: keep it; go on, or stop here and
        leave the rest on the wire."""
        reader = fp.reader
        replies = self.replies
        if replies is None:
            replies = self.replies = []
        if status == RESULT:
            shape = reader.shape
            rows = tuple(reader.rows)  # type: ignore[arg-type]
            replies.append(Reply(rows, shape.description, shape, len(rows), None,
                                 reader.warning_count))
        else:
            replies.append(Reply(None, None, None, reader.affected_rows, reader.insert_id,
                                 reader.warning_count))
        if server_status & MORE_RESULTS:
            if self.collect:
                reader.start(reader.seq)
                return False
            fp.more_seq = reader.seq
        self.finish(fp)
        return True

    def finish(self, fp: FastPath) -> None:
        """Turn the kept replies into the result."""
        cls = self.cursor_class
        replies = self.replies or []
        if cls is None:
            self.result = None
        elif cls is Reply:
            self.result = replies[0]
        else:
            try:
                self.result = cls.from_replies(self.handle, replies, self.error, self.collect)
            except Exception as exc:  # a dict cursor over odd rows, say
                self.result = None
                self.error = exc
                return
        self.error = None  # a later statement's error travels in the cursor
        if fp.more_seq is not None:
            fp.more_owner = self.handle if cls is Reply else self.result

    def complete(self) -> None:
        if self.error is not None:
            self.resolve(None, self.error)
        else:
            self.resolve(self.result, None)

    def fail(self, exc: BaseException, sent: bool) -> None:
        self.resolve(None, exc)

    def resolve(self, result: Any, exc: BaseException | None) -> None:
        """Hand the outcome to whoever waits for it."""
        raise NotImplementedError


class Silent(Command):
    """Commands a pool pipelines (a session reset: ``count`` replies, each
    must not be an error; result sets are read and dropped), or, with
    ``drain``, the result sets a caller left on the wire."""

    __slots__ = ("count", "drain", "error", "on_error", "quiet")

    def __init__(self, packet: bytes, seq: int, count: int,
                 on_error: Callable[[BaseException], None] | None = None,
                 drain: bool = False) -> None:
        super().__init__(packet, seq, False)
        self.count = count
        self.drain = drain
        self.error: BaseException | None = None
        self.on_error = on_error
        #: A drain whose error concerns nobody any more (dropped).
        self.quiet = False

    def step(self, fp: FastPath, status: int) -> bool:
        reader = fp.reader
        if status == OK or status == RESULT:
            fp.note_status(reader.server_status)
            if reader.server_status & MORE_RESULTS:
                reader.start(reader.seq)
                return False
            self.count -= 1
            if self.count > 0:
                reader.start(1)  # the next pipelined command's reply
                return False
            return True
        if status == ERROR:
            # Ends a drain (nothing follows an error); fails a reset (the
            # connection closes, so its remaining replies do not matter).
            self.error = server_error(reader.error)
            return True
        return fp.unusual(status)

    def complete(self) -> None:
        if self.error is not None and self.on_error is not None:
            self.on_error(self.error)

    def fail(self, exc: BaseException, sent: bool) -> None:
        """The connection went away first: nothing left to restore."""


class Canceller(Protocol):
    """What a :class:`CommandFuture` tells when it is cancelled."""

    def cancel_command(self, cmd: Command) -> None: ...


class CommandFuture(asyncio.Future[T]):
    """The Future a command resolves.  Cancelling it (directly, or by
    cancelling the task awaiting it) tells the connection at once: a command
    not yet written is dropped; one in flight closes the connection (the
    server is still running it)."""

    # No __init__ of its own (one runs per query); the slots stay unset
    # until attach().
    __slots__ = ("_canceller", "_cmd")
    _canceller: Canceller
    _cmd: Command | None

    def attach(self, canceller: Canceller, cmd: Command) -> None:
        """From now on a cancellation of this Future cancels ``cmd``."""
        self._canceller = canceller
        self._cmd = cmd

    def settle(self, value: Any, exc: BaseException | None) -> None:
        """Resolve (unless cancelled already) and forget the command."""
        self._cmd = None
        if self.done():
            return
        if exc is None:
            self.set_result(value)
        else:
            self.set_exception(exc)

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        cmd = getattr(self, "_cmd", None)
        self._cmd = None
        if cmd is not None:
            self._canceller.cancel_command(cmd)
        return True


class FutureStatement(Statement):
    """A statement whose outcome resolves a :class:`CommandFuture`."""

    __slots__ = ("future",)

    def __init__(self, packet: bytes, seq: int, cursor_class: Any, handle: Any,
                 future: CommandFuture[Any]) -> None:
        self.packet = packet
        self.seq = seq
        self.user = True
        self.timer = None
        self.cursor_class = cursor_class
        self.handle = handle
        self.replies = None
        self.error = None
        self.result = None
        self.future = future

    def complete(self) -> None:
        fut = self.future
        fut._cmd = None
        if not fut.done():  # not cancelled meanwhile
            if self.error is None:
                fut.set_result(self.result)
            else:
                fut.set_exception(self.error)

    def resolve(self, result: Any, exc: BaseException | None) -> None:
        self.future.settle(result, exc)


def server_error(payload: bytes | None) -> BaseException:
    """The PyMySQL exception for an ERR packet (not raised)."""
    if payload is None:
        missing: BaseException = InternalError("an error reply without its payload")
        return missing
    try:
        _pymysql.raise_server_error(payload)
    except Exception as exc:  # raise_server_error always raises
        return exc
    raise AssertionError("unreachable")  # pragma: no cover


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
