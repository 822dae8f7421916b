"""Result cursors: what :meth:`tornpool.Connection.execute` resolves to.

* :class:`Cursor` / :class:`DictCursor` are *buffered*: the whole result is in
  memory when ``execute`` resolves, so ``fetchone``/``fetchmany``/``fetchall``
  and iteration are plain synchronous calls returning exactly what PyMySQL's
  cursors return (tuples, or dicts keyed as PyMySQL keys them).  Only
  :meth:`Cursor.nextset` may talk to the server and is awaitable.
* :class:`SSCursor` / :class:`SSDictCursor` are *unbuffered* (streaming): rows
  are read from the network as you fetch them, so the fetch methods are
  awaitable and ``async for row in cursor`` walks any result in constant
  memory (rows are pulled in batches of :attr:`SSCursor.arraysize`).  Until the
  result is fully read or the cursor closed, the connection can run nothing
  else.

A cursor reaches its connection through a *handle*: the connection itself, or
the pool lease it was made on.  Once that lease is given back, whatever would
touch the connection raises :class:`~tornpool.errors.ConnectionReleased`;
rows already read stay readable.  Cursors from :meth:`tornpool.Pool.execute`
hold every result set of their statement and no connection at all.

For the DB-API shape (``cur = conn.cursor(); await cur.execute(...)``) see
:mod:`tornpool.async_cursor`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pymysql.cursors
from pymysql import err

from tornpool._pymysql import GreenSSCursor, GreenSSDictCursor
from tornpool.errors import ConnectionReleased

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.connection import Connection
    from tornpool.commands import Reply

__all__ = ["Cursor", "DictCursor", "SSCursor", "SSDictCursor", "Handle", "DETACHED", "cursor_class_for"]

Row = Any


class Handle(Protocol):
    """How a cursor reaches its connection (a Connection or a pool lease)."""

    @property
    def connection(self) -> Connection: ...


class _Detached:
    """Handle of a cursor whose statement ran on a connection that went back
    to the pool (:meth:`tornpool.Pool.execute`)."""

    @property
    def connection(self) -> Connection:
        raise ConnectionReleased(
            0, "this cursor's connection went back to the pool; it holds its rows only"
        )


#: The handle of cursors that own no connection.
DETACHED: Handle = _Detached()


class Cursor:
    """Buffered cursor; rows are tuples."""

    #: Whether rows are dicts (class attribute; :class:`DictCursor` sets it).
    as_dict: ClassVar[bool] = False
    #: PyMySQL's cursor class of the same kind (for the greenlet path).
    raw_class: ClassVar[type[pymysql.cursors.Cursor]] = pymysql.cursors.Cursor
    #: Buffered cursors come back from the fast path.
    streaming: ClassVar[bool] = False

    __slots__ = (
        "_handle", "_rows", "rownumber", "rowcount", "lastrowid", "description",
        "warning_count", "arraysize", "_more", "_more_error",
    )

    def __init__(self, handle: Handle, reply: Reply | None = None) -> None:
        self._handle = handle
        self.arraysize = 1
        #: Collected later result sets (None: they are still on the wire).
        self._more: deque[Reply] | tuple[()] | None = None
        self._more_error: BaseException | None = None
        self._clear()
        if reply is not None:
            self._load(reply)

    @classmethod
    def from_result(cls, handle: Handle, rows: Any, shape: Any, rowcount: int | None,
                    lastrowid: int | None, warning_count: int, collected: bool) -> Cursor:
        """The cursor for a statement's single result (the fast path's
        usual case; the same state :meth:`_load` builds, in one call).
        ``collected``: the statement's reply was read to its end, so there
        is no later result set to ask the connection for."""
        cur = cls.__new__(cls)
        cur._handle = handle
        cur.arraysize = 1
        cur._more = _NOTHING_MORE if collected else None
        cur._more_error = None
        if cls.as_dict and rows:
            keys = shape.dict_keys
            rows = [dict(zip(keys, row)) for row in rows]
        cur._rows = rows
        cur.rownumber = 0
        cur.rowcount = rowcount
        cur.lastrowid = lastrowid
        cur.description = None if shape is None else shape.description
        cur.warning_count = warning_count
        return cur

    @classmethod
    def from_replies(
        cls, handle: Handle, replies: list[Reply], error: BaseException | None, collected: bool
    ) -> Cursor:
        """The cursor for a statement's replies.  With ``collected`` every
        result set is in ``replies`` (and ``error`` is the failure of a later
        one, raised by :meth:`nextset`)."""
        cur = cls(handle, replies[0])
        if collected:
            cur._more = deque(replies[1:])
            cur._more_error = error
        return cur

    def _clear(self) -> None:
        self._rows: Any = None
        self.rownumber = 0
        #: Rows in the result, or rows affected; -1 before any statement
        #: (None only if the server reported "unknown", as PyMySQL keeps it).
        self.rowcount: int | None = -1
        self.lastrowid: int | None = None
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self.warning_count = 0

    def _load(self, reply: Reply) -> None:
        rows = reply.rows
        if self.as_dict and rows and reply.shape is not None:
            keys = reply.shape.dict_keys
            rows = [dict(zip(keys, row)) for row in rows]
        self._rows = rows
        self.rownumber = 0
        self.rowcount = reply.rowcount
        self.lastrowid = reply.lastrowid
        self.description = reply.description
        self.warning_count = reply.warning_count

    @property
    def connection(self) -> Connection:
        """The connection this cursor belongs to.

        :raises ConnectionReleased: its pool lease was given back (or it came
            from :meth:`tornpool.Pool.execute`).
        """
        return self._handle.connection

    # -- rows ------------------------------------------------------------------------

    def fetchone(self) -> Row | None:
        """The next row, or None when the result is exhausted."""
        rows = self._rows
        if rows is None or self.rownumber >= len(rows):
            return None
        row = rows[self.rownumber]
        self.rownumber += 1
        return row

    def fetchmany(self, size: int | None = None) -> Sequence[Row]:
        """Up to ``size`` (default :attr:`arraysize`) next rows."""
        rows = self._rows
        if rows is None:
            return ()
        end = self.rownumber + (size or self.arraysize)
        result = rows[self.rownumber : end]
        self.rownumber = min(end, len(rows))
        return result  # type: ignore[no-any-return]

    def fetchall(self) -> Sequence[Row]:
        """All remaining rows."""
        rows = self._rows
        if rows is None:
            return []
        result = rows[self.rownumber :] if self.rownumber else rows
        self.rownumber = len(rows)
        return result  # type: ignore[no-any-return]

    def scroll(self, value: int, mode: str = "relative") -> None:
        """Move the row pointer (``mode`` is ``relative`` or ``absolute``).

        :raises ProgrammingError: unknown mode.
        :raises IndexError: out of range.
        """
        if mode == "relative":
            r = self.rownumber + value
        elif mode == "absolute":
            r = value
        else:
            raise err.ProgrammingError("unknown scroll mode %s" % mode)
        if not (0 <= r < len(self._rows or ())):
            raise IndexError("out of range")
        self.rownumber = r

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchone, None)

    # -- result sets -----------------------------------------------------------------

    async def nextset(self) -> bool:
        """Advance to the next result set (multi-statement queries, stored
        procedures).

        :returns: True if there is another result set (now current), False
            otherwise (the current rows stay).
        :raises MySQLError: the error of a later statement surfaces here.
        :raises ConnectionReleased: the cursor's lease was given back (and
            its later result sets, if any, went with the connection).
        """
        more = self._more
        if more is not None:
            if more:
                assert isinstance(more, deque)
                self._clear()
                self._load(more.popleft())
                return True
            exc, self._more_error = self._more_error, None
            if exc is not None:
                self._clear()
                raise exc
            return False
        reply = await self.connection.next_result(self)
        if reply is None:
            return False
        self._clear()
        self._load(reply)
        return True

    def close(self) -> None:
        """Forget the rows.  Result sets still on the wire are drained by the
        connection's next command."""
        self._rows = None
        self._more = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rowcount={self.rowcount}>"


#: ``Cursor._more`` of a cursor whose reply was read to its end with no later
#: result set (shared: no allocation per query).
_NOTHING_MORE: tuple[()] = ()


class DictCursor(Cursor):
    """Buffered cursor; rows are dicts keyed by column name (a repeated name
    gets its table's name in front, as PyMySQL does)."""

    as_dict = True
    raw_class = pymysql.cursors.DictCursor
    __slots__ = ()


class SSCursor:
    """Unbuffered (streaming) cursor; rows are tuples.

    ``async for row in cursor`` reads the result in batches of
    :attr:`arraysize` rows, so memory stays constant whatever the result size.
    Close it (``await cursor.close()``, or ``async with``) if you stop early;
    the connection can run nothing else until the result is consumed.
    """

    as_dict: ClassVar[bool] = False
    raw_class: ClassVar[type[pymysql.cursors.Cursor]] = GreenSSCursor
    streaming: ClassVar[bool] = True
    __slots__ = ("_handle", "_raw", "_batch")

    def __init__(self, handle: Handle, raw: pymysql.cursors.Cursor) -> None:
        self._handle = handle
        self._raw = raw
        self._batch: deque[Row] = deque()
        if raw.arraysize == 1:
            raw.arraysize = 1000

    @property
    def connection(self) -> Connection:
        """The connection this cursor streams from.

        :raises ConnectionReleased: its pool lease was given back.
        """
        return self._handle.connection

    @property
    def description(self) -> tuple[tuple[Any, ...], ...] | None:
        """DB-API column descriptions of the current result set, or None."""
        return self._raw.description  # type: ignore[no-any-return]

    @property
    def rowcount(self) -> int:
        """Unknown until the end for a streaming result (PyMySQL's value)."""
        return self._raw.rowcount  # type: ignore[no-any-return]

    @property
    def lastrowid(self) -> int | None:
        return self._raw.lastrowid  # type: ignore[no-any-return]

    @property
    def rownumber(self) -> int:
        """Index of the next row to fetch."""
        return self._raw.rownumber - len(self._batch)  # type: ignore[no-any-return]

    @property
    def warning_count(self) -> int:
        return self._raw.warning_count  # type: ignore[no-any-return]

    @property
    def arraysize(self) -> int:
        """Rows read per batch by ``async for`` (and default of :meth:`fetchmany`)."""
        return self._raw.arraysize  # type: ignore[no-any-return]

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._raw.arraysize = value

    async def _pull(self, method: str, *args: Any) -> Any:
        return await self.connection.stream_call(getattr(self._raw, method), args)

    async def fetchone(self) -> Row | None:
        """Resolves to the next row, or None at the end of the result."""
        if self._batch:
            return self._batch.popleft()
        return await self._pull("fetchone")

    async def fetchmany(self, size: int | None = None) -> list[Row]:
        """Resolves to up to ``size`` (default :attr:`arraysize`) next rows."""
        size = size or self._raw.arraysize
        batch = self._batch
        rows = [batch.popleft() for _ in range(min(size, len(batch)))]
        if len(rows) < size:
            rows.extend(await self._pull("fetchmany", size - len(rows)))
        return rows

    async def fetchall(self) -> list[Row]:
        """Resolves to all remaining rows (this buffers them: prefer ``async for``)."""
        rows = list(self._batch)
        self._batch.clear()
        rows.extend(await self._pull("fetchall"))
        return rows

    async def scroll(self, value: int, mode: str = "relative") -> None:
        """Skip forward (streaming results cannot go back).

        :raises NotSupportedError: a backwards move.
        """
        skip = min(value, len(self._batch)) if mode == "relative" and value > 0 else 0
        for _ in range(skip):
            self._batch.popleft()
        if value - skip or mode != "relative":
            await self._pull("scroll", value - skip, mode)

    def __aiter__(self) -> AsyncIterator[Row]:
        return self

    async def __anext__(self) -> Row:
        if not self._batch:
            self._batch.extend(await self._pull("fetchmany", self._raw.arraysize))
            if not self._batch:
                raise StopAsyncIteration
        return self._batch.popleft()

    async def nextset(self) -> bool:
        """Skip the rest of this result set and advance to the next one.

        :returns: True if there is another result set.
        """
        self._batch.clear()
        return bool(await self._pull("nextset"))

    async def close(self) -> None:
        """Read and discard the rest of the result so the connection is usable."""
        self._batch.clear()
        if self._raw.connection is None:
            return
        try:
            conn = self.connection
        except ConnectionReleased:
            return  # the pool closed the connection with the unread result
        if not conn.closed:
            await conn.stream_call(self._raw.close, ())

    async def __aenter__(self) -> SSCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class SSDictCursor(SSCursor):
    """Unbuffered (streaming) cursor; rows are dicts keyed by column name."""

    as_dict = True
    raw_class = GreenSSDictCursor
    __slots__ = ()


#: The cursor classes PyMySQL users pass, and tornpool's own.
CURSOR_CLASSES: dict[Any, type[Cursor] | type[SSCursor]] = {
    None: Cursor,
    Cursor: Cursor,
    DictCursor: DictCursor,
    SSCursor: SSCursor,
    SSDictCursor: SSDictCursor,
    pymysql.cursors.Cursor: Cursor,
    pymysql.cursors.DictCursor: DictCursor,
    pymysql.cursors.SSCursor: SSCursor,
    pymysql.cursors.SSDictCursor: SSDictCursor,
}


def cursor_class_for(cls: Any) -> Any:
    """tornpool's cursor class for ``cls`` (None, a tornpool class, or the
    PyMySQL class of the same kind).

    :raises InterfaceError: any other class.
    """
    try:
        return CURSOR_CLASSES[cls]
    except (KeyError, TypeError):
        pass
    if isinstance(cls, type) and issubclass(cls, (Cursor, SSCursor)):
        return cls
    raise err.InterfaceError(
        0, f"unsupported cursor class {cls!r}: use Cursor, DictCursor, SSCursor or SSDictCursor"
    )
