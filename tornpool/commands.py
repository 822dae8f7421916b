"""Commands on the wire and the consumers of their replies.

A :class:`Command` carries the bytes to send and consumes the statuses the
codec's :class:`~tornpool.codec.ResponseReader` reports while its reply
arrives; :class:`~tornpool.fastpath.FastPath` sequences them on one
connection.  The kinds:

* :class:`Statement` -- a caller's statement; its reply becomes a cursor (or
  a bare :class:`Reply`).  :class:`FutureStatement` resolves a
  :class:`CommandFuture`; the pool has its own kind that also hands the
  connection back.
* :class:`Silent` -- what a pool pipelines on release (a session reset) and
  the drain of result sets a caller left on the wire.

Nothing here does I/O; PyMySQL is reached only through :mod:`tornpool._pymysql`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pymysql.constants import CR, SERVER_STATUS

from tornpool import _pymysql, codec
from tornpool.errors import ConnectionLost, InternalError

if TYPE_CHECKING:
    from tornpool.fastpath import FastPath

__all__ = [
    "Command",
    "Reply",
    "Statement",
    "Silent",
    "CommandFuture",
    "FutureStatement",
    "never_sent",
    "server_error",
    "COM_QUERY",
    "COM_PING",
    "COM_INIT_DB",
    "MORE_RESULTS",
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

OK = codec.OK
RESULT = codec.RESULT
ERROR = codec.ERROR


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
