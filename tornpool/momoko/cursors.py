"""What Momoko's ``execute`` resolves to: psycopg2-shaped cursors.

``cursor_factory`` (per pool, per connection or per call) picks the class,
and the cursor you get is an instance of it:

========================= ==================================================
:class:`Cursor`           rows are tuples (the default)
:class:`RealDictCursor`   rows are dicts keyed by column name
:class:`DictCursor`       rows are :class:`DictRow`: dicts that also answer
                          ``row[0]``, like psycopg2's ``DictRow``
:class:`NamedTupleCursor` rows are namedtuples (``row.a``)
:class:`SSCursor`,        streaming (server-side) results: ``fetch*`` are
:class:`SSDictCursor`     awaitable and ``async for`` works; only on a
                          connection (``getconn()`` or ``connect()``)
========================= ==================================================

psycopg2's own classes of those names (``psycopg2.extras.RealDictCursor``
...) are accepted too, as are tornpool's and PyMySQL's ``Cursor``,
``DictCursor`` (dict rows), ``SSCursor`` and ``SSDictCursor``; so are the
connection factories ``RealDictConnection``, ``DictConnection`` and
``NamedTupleConnection``, which set the default cursor factory.

Buffered cursors hold every row of their statement's first result set (and
no connection): ``fetchone()``, ``fetchmany()``,
``fetchall()`` (lists, as psycopg2 returns them), iteration and ``scroll()``
never wait.  Columns the server sends as JSON (MySQL's JSON type) are decoded
once ``register_json()`` was called; MariaDB sends JSON as text, which stays
a ``str`` (see ``docs/migrating-from-momoko.md``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, ClassVar

import pymysql.cursors
from pymysql.constants import FIELD_TYPE

import tornpool
from tornpool.errors import InterfaceError, ProgrammingError

__all__ = [
    "Cursor", "RealDictCursor", "DictCursor", "NamedTupleCursor", "SSCursor", "SSDictCursor",
    "RealDictConnection", "DictConnection", "NamedTupleConnection", "DictRow", "JSONSetting",
    "cursor_class", "default_cursor_class", "version_number", "drain",
]

Loads = Callable[[Any], Any]


class JSONSetting:
    """Whether (and how) JSON columns are decoded; shared by a pool and the
    connections it hands out."""

    __slots__ = ("loads",)

    def __init__(self) -> None:
        self.loads: Loads | None = None

    def register(self, loads: Loads | None, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Decode with ``loads`` (default :func:`json.loads`) from now on;
        a Future already resolved to None (``register_json``'s)."""
        self.loads = loads or json.loads
        fut: asyncio.Future[None] = loop.create_future()
        fut.set_result(None)
        return fut


class DictRow(dict):  # type: ignore[type-arg]
    """A row as a dict that also answers ``row[0]`` (psycopg2's ``DictRow``)."""

    __slots__ = ("_values",)

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        super().__init__(zip(names, values))
        self._values = tuple(values)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, slice)):
            return self._values[key]
        return super().__getitem__(key)


class _Shaper:
    """Turns one result's tuples into the rows a cursor class promises."""

    __slots__ = ("make",)

    def __init__(self, kind: str, description: Any, loads: Loads | None) -> None:
        names = [d[0] for d in description] if description else []
        json_at = ([i for i, d in enumerate(description) if d[1] == FIELD_TYPE.JSON]
                   if loads is not None and description else [])
        shape = _shape(kind, names)
        if json_at:
            decode = loads
            assert decode is not None

            def make(row: Any) -> Any:
                values = list(row)
                for i in json_at:
                    if values[i] is not None:
                        values[i] = decode(values[i])
                return shape(values)

            self.make: Callable[[Any], Any] = make
        else:
            self.make = shape


def _shape(kind: str, names: list[str]) -> Callable[[Any], Any]:
    if kind == "realdict":
        return lambda row: dict(zip(names, row))
    if kind == "dict":
        return lambda row: DictRow(names, row)
    if kind == "namedtuple":
        record = collections.namedtuple("Record", names, rename=True)  # type: ignore[misc]
        return lambda row: record._make(row)
    return tuple


async def drain(result: Any) -> None:
    """Read and drop the result sets after ``result``'s current one (a
    procedure's closing status packet included), so that its connection is
    free again -- and can go back to a pool without being closed for an
    unread result."""
    while await result.nextset():
        pass


class Cursor:
    """A buffered result (tuples); see the module docstring.  It holds the
    rows of its statement's first result set and no connection."""

    #: How rows look: ``tuple``, ``realdict``, ``dict`` or ``namedtuple``.
    rows: ClassVar[str] = "tuple"
    #: Streaming classes need a held connection.
    streaming: ClassVar[bool] = False
    #: The tornpool cursor class the statement runs with.
    native: ClassVar[type[Any]] = tornpool.Cursor

    __slots__ = ("_rows", "description", "rowcount", "lastrowid", "rownumber", "arraysize", "closed")

    def __init__(self, result: Any, loads: Loads | None = None) -> None:
        make = _Shaper(self.rows, result.description, loads).make
        rows = result.fetchall()
        self._rows: list[Any] = list(rows) if make is tuple else [make(row) for row in rows]
        #: DB-API column descriptions, or None for a statement without rows.
        self.description: Any = result.description
        #: Rows in the result, or rows the statement changed.
        self.rowcount: int = result.rowcount
        #: The AUTO_INCREMENT value the statement generated (psycopg2's oid).
        self.lastrowid: int | None = result.lastrowid
        #: Index of the next row to fetch.
        self.rownumber = 0
        #: Default size of :meth:`fetchmany`.
        self.arraysize = 1
        self.closed = False

    def fetchone(self) -> Any:
        """The next row, or None at the end."""
        if self.rownumber >= len(self._rows):
            return None
        self.rownumber += 1
        return self._rows[self.rownumber - 1]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to ``size`` (default :attr:`arraysize`) next rows."""
        rows = self._rows[self.rownumber:self.rownumber + (size or self.arraysize)]
        self.rownumber += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        rows = self._rows[self.rownumber:]
        self.rownumber = len(self._rows)
        return rows

    def scroll(self, value: int, mode: str = "relative") -> None:
        """Move the row pointer (``relative`` or ``absolute``).

        :raises ProgrammingError: unknown mode.
        :raises IndexError: out of range.
        """
        if mode not in ("relative", "absolute"):
            raise ProgrammingError(0, f"unknown scroll mode {mode!r}")
        target = self.rownumber + value if mode == "relative" else value
        if not 0 <= target < len(self._rows):
            raise IndexError("out of range")
        self.rownumber = target

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchone, None)

    def close(self) -> None:
        """Forget the rows."""
        self.closed = True
        self._rows = []

    def __repr__(self) -> str:
        return f"<tornpool.momoko.{type(self).__name__} rowcount={self.rowcount}>"


class RealDictCursor(Cursor):
    """Rows are dicts keyed by column name."""

    rows = "realdict"
    __slots__ = ()


class DictCursor(Cursor):
    """Rows are :class:`DictRow` (dict access and ``row[0]``)."""

    rows = "dict"
    __slots__ = ()


class NamedTupleCursor(Cursor):
    """Rows are namedtuples named after the columns (invalid names are
    replaced by ``_0``, ``_1``..., as :func:`collections.namedtuple` does)."""

    rows = "namedtuple"
    __slots__ = ()


class SSCursor:
    """A streaming result (tuples): ``await cur.fetchone()``,
    ``await cur.fetchmany(n)``, ``async for row in cur``.  Until it is read
    to the end or closed (``await cur.close()``), its connection can run
    nothing else."""

    rows: ClassVar[str] = "tuple"
    streaming: ClassVar[bool] = True
    native: ClassVar[type[Any]] = tornpool.SSCursor

    __slots__ = ("_result", "_make")

    def __init__(self, result: Any, loads: Loads | None = None) -> None:
        self._result = result
        self._make = _Shaper(self.rows, result.description, loads).make

    @property
    def description(self) -> Any:
        return self._result.description

    @property
    def rownumber(self) -> int:
        return self._result.rownumber  # type: ignore[no-any-return]

    async def fetchone(self) -> Any:
        """Resolves to the next row, or None at the end."""
        row = await self._result.fetchone()
        return None if row is None else self._make(row)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """Resolves to up to ``size`` next rows."""
        return [self._make(row) for row in await self._result.fetchmany(size)]

    async def fetchall(self) -> list[Any]:
        """Resolves to every remaining row (in memory: prefer ``async for``)."""
        return [self._make(row) for row in await self._result.fetchall()]

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        async for row in self._result:
            yield self._make(row)

    async def close(self) -> None:
        """Discard the rest of the result so the connection is usable again."""
        await self._result.close()


class SSDictCursor(SSCursor):
    """A streaming result whose rows are dicts."""

    rows = "realdict"
    __slots__ = ()


class RealDictConnection:
    """``connection_factory``: every cursor is a :class:`RealDictCursor`."""

    cursor_factory: ClassVar[type[Any]] = RealDictCursor


class DictConnection:
    """``connection_factory``: every cursor is a :class:`DictCursor`."""

    cursor_factory: ClassVar[type[Any]] = DictCursor


class NamedTupleConnection:
    """``connection_factory``: every cursor is a :class:`NamedTupleCursor`."""

    cursor_factory: ClassVar[type[Any]] = NamedTupleCursor


_OURS = (Cursor, SSCursor)
_BY_CLASS: dict[Any, type[Any]] = {
    tornpool.Cursor: Cursor,
    tornpool.DictCursor: RealDictCursor,
    tornpool.SSCursor: SSCursor,
    tornpool.SSDictCursor: SSDictCursor,
    pymysql.cursors.Cursor: Cursor,
    pymysql.cursors.DictCursor: RealDictCursor,
    pymysql.cursors.SSCursor: SSCursor,
    pymysql.cursors.SSDictCursor: SSDictCursor,
}
#: psycopg2.extras classes, recognised by name (psycopg2 need not be installed).
_PSYCOPG2: dict[str, type[Any]] = {
    "RealDictCursor": RealDictCursor,
    "DictCursor": DictCursor,
    "NamedTupleCursor": NamedTupleCursor,
    "RealDictConnection": RealDictCursor,
    "DictConnection": DictCursor,
    "NamedTupleConnection": NamedTupleCursor,
}


def _from_psycopg2(cls: Any, connections: bool) -> type[Any] | None:
    name = getattr(cls, "__name__", "")
    module = getattr(cls, "__module__", "") or ""
    if module.split(".")[0] != "psycopg2" or name.endswith("Connection") != connections:
        return None
    return _PSYCOPG2.get(name)


def cursor_class(factory: Any) -> type[Any] | None:
    """Our cursor class for a ``cursor_factory`` argument (None for None).

    :raises InterfaceError: a class this facade cannot imitate.
    """
    if factory is None:
        return None
    if isinstance(factory, type) and issubclass(factory, _OURS):
        return factory
    found = _BY_CLASS.get(factory) or _from_psycopg2(factory, connections=False)
    if found is None:
        raise InterfaceError(
            0, f"unsupported cursor_factory {factory!r}: use tornpool.momoko's Cursor, "
               "RealDictCursor, DictCursor, NamedTupleCursor, SSCursor or SSDictCursor")
    return found


def default_cursor_class(connection_factory: Any, cursor_factory: Any) -> type[Any]:
    """The cursor class a pool or connection uses when a call names none.

    :raises InterfaceError: an unsupported factory.
    """
    chosen = cursor_class(cursor_factory)
    if chosen is not None:
        return chosen
    if connection_factory is None:
        return Cursor
    if isinstance(connection_factory, type) and issubclass(
            connection_factory, (RealDictConnection, DictConnection, NamedTupleConnection)):
        return connection_factory.cursor_factory
    found = _from_psycopg2(connection_factory, connections=True)
    if found is None:
        raise InterfaceError(
            0, f"unsupported connection_factory {connection_factory!r}: use RealDictConnection, "
               "DictConnection or NamedTupleConnection (or a cursor_factory)")
    return found


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def version_number(version: str) -> int:
    """``10.11.6-MariaDB`` as psycopg2 would give it: ``101106`` (MariaDB's
    ``5.5.5-`` handshake prefix is skipped).

    :raises ProgrammingError: no ``x.y.z`` in the string.
    """
    text = version[6:] if version.startswith("5.5.5-") else version
    match = _VERSION.search(text)
    if match is None:
        raise ProgrammingError(0, f"cannot read a version number in {version!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major * 10000 + minor * 100 + patch
