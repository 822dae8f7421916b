"""The buffered result of a proxied statement, and reading a worker's reply."""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Tuple

from ._sqlite_errors import error_from_payload
from ._sqlite_protocol import ST_OK, AnyReply, decode_body

__all__ = ["Result", "result_from_reply"]

Row = Tuple[Any, ...]
Description = Tuple[Tuple[Any, ...], ...]


class Result:
    """What ``execute`` returns: every row, already here (cursor-like).

    The worker ran ``fetchall()`` (and, a worker process, pickled the rows back), so the fetch
    methods are plain synchronous calls that never touch a worker.

    :ivar rows: all rows, as tuples.
    :ivar description: DB-API column descriptions (``(name, None, ...)``
        like sqlite3's), or None for a statement that returns no rows.
    :ivar rowcount: rows returned by a row-returning statement (SELECT,
        ``RETURNING``); rows changed by INSERT / UPDATE / DELETE (summed
        over ``executemany``); -1 otherwise.
    :ivar lastrowid: rowid of the last row INSERTed (sqlite3's lastrowid).
    """

    __slots__ = ("rows", "description", "rowcount", "lastrowid", "arraysize", "_pos")

    def __init__(self, rows: List[Row], description: Optional[Description], rowcount: int,
                 lastrowid: Optional[int]) -> None:
        self.rows = rows
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        #: default size of :meth:`fetchmany`
        self.arraysize = 1
        self._pos = 0

    def fetchone(self) -> Optional[Row]:
        """The next row, or None at the end."""
        pos = self._pos
        if pos >= len(self.rows):
            return None
        self._pos = pos + 1
        return self.rows[pos]

    def fetchmany(self, size: Optional[int] = None) -> List[Row]:
        """Up to ``size`` (default :attr:`arraysize`) next rows."""
        pos = self._pos
        end = pos + (self.arraysize if size is None else max(size, 0))
        chunk = self.rows[pos:end]
        self._pos = pos + len(chunk)
        return chunk

    def fetchall(self) -> List[Row]:
        """Every remaining row."""
        pos = self._pos
        self._pos = len(self.rows)
        return self.rows[pos:] if pos else self.rows

    @property
    def columns(self) -> Sequence[str]:
        """Column names (empty for a statement without rows)."""
        return [d[0] for d in self.description or ()]

    def __iter__(self) -> Iterator[Row]:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return "<Result rows=%d rowcount=%d lastrowid=%r>" % (
            len(self.rows), self.rowcount, self.lastrowid)


def result_from_reply(reply: AnyReply) -> Result:
    """Turn a worker's ``ST_OK`` reply (pickled, or in-process) into a :class:`Result`.

    :raises SQLiteError: the reply is an error (its class, its message).
    """
    status, body = reply
    if status == ST_OK:
        rows, description, rowcount, lastrowid = decode_body(body)
        return Result(rows, description, rowcount, lastrowid)
    raise error_from_payload(decode_body(body))
