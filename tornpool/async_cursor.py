"""The DB-API shaped cursor: ``conn.cursor()``.

PyMySQL, aiomysql, asyncmy and TorMySQL users write::

    async with conn.cursor(DictCursor) as cur:
        await cur.execute("SELECT * FROM t WHERE id = %s", (7,))
        rows = await cur.fetchall()

:class:`AsyncCursor` offers that on a :class:`~tornpool.Connection` and on a
pool lease: ``execute``, ``executemany``, ``callproc``, ``fetchone``,
``fetchmany``, ``fetchall``, ``scroll``, ``nextset``, ``close`` and ``async
for`` are awaitable (so ``yield`` works under ``@gen.coroutine`` too);
``rowcount``, ``lastrowid``, ``description``, ``rownumber``, ``arraysize``
and ``warning_count`` are attributes.  The cursor class given to
``cursor()`` -- tornpool's or PyMySQL's ``Cursor``, ``DictCursor``,
``SSCursor``, ``SSDictCursor`` -- says whether rows are tuples or dicts and
whether results are buffered or streamed.  Fetching from a buffered result
never waits; from a streaming one it reads the network.

Made on a lease, the cursor dies with it: after the lease is given back,
``execute`` and anything that would read more rows raise
:class:`~tornpool.errors.ConnectionReleased`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any

from pymysql import err

from tornpool.cursors import Cursor, DictCursor, Handle, SSCursor, cursor_class_for

__all__ = ["AsyncCursor"]


class AsyncCursor:
    """A DB-API cursor with awaitable methods; see the module docstring."""

    __slots__ = ("_handle", "_class", "_result", "_arraysize", "_closed")

    def __init__(self, handle: Handle, cursorclass: Any = None) -> None:
        self._handle = handle
        self._class: Any = cursor_class_for(cursorclass)
        self._result: Cursor | SSCursor | None = None
        self._arraysize = 1
        self._closed = False

    @property
    def connection(self) -> Any:
        """The connection (or lease) this cursor runs on.

        :raises ConnectionReleased: its lease was given back.
        """
        self._handle.connection  # raises once released
        return self._handle

    # -- running ---------------------------------------------------------------------

    def _check(self) -> Any:
        if self._closed:
            raise err.ProgrammingError("Cursor closed")
        return self._handle.connection

    async def _drop_stream(self) -> None:
        result = self._result
        self._result = None
        if isinstance(result, SSCursor):
            await result.close()

    async def execute(self, query: str, args: Any = None) -> int | None:
        """Run one statement.

        :returns: (resolves to) the number of affected or buffered rows
            (PyMySQL's return value).
        :raises ProgrammingError: the cursor is closed, or the server's error.
        :raises ConnectionReleased: the cursor's lease was given back.
        """
        conn = self._check()
        await self._drop_stream()
        result = await conn.execute_on(query, args, None, self._class, self._handle)
        self._set(result)
        return self.rowcount

    async def executemany(self, query: str, args: Iterable[Any]) -> int | None:
        """Run ``query`` once per parameter set (PyMySQL's batching of
        ``INSERT ... VALUES``).

        :returns: (resolves to) the total affected rows (None for no args).
        """
        conn = self._check()
        await self._drop_stream()
        seq = list(args)
        if not seq:
            return None
        result = await conn.executemany(query, seq, cursor=self._buffered_class(), handle=self._handle)
        self._set(result)
        return self.rowcount

    async def callproc(self, procname: str, args: Sequence[Any] = ()) -> Sequence[Any]:
        """Call a stored procedure; its result sets follow through
        :meth:`nextset`.

        :returns: (resolves to) ``args`` (OUT values are read with
            ``SELECT @_procname_n``, as in PyMySQL).
        """
        conn = self._check()
        await self._drop_stream()
        result = await conn.callproc(procname, args, cursor=self._buffered_class(), handle=self._handle)
        self._set(result)
        return args

    def _buffered_class(self) -> Any:
        """executemany/callproc results are buffered; the row type stays."""
        return DictCursor if self._class.as_dict else Cursor

    def _set(self, result: Cursor | SSCursor) -> None:
        # fetchmany passes its size explicitly, so a streaming result keeps
        # its own (large) batch size for reading.
        self._result = result

    def mogrify(self, query: str, args: Any = None) -> str:
        """The statement :meth:`execute` would send."""
        return self._handle.connection.mogrify(query, args)

    # -- rows ---------------------------------------------------------------------

    def _current(self) -> Cursor | SSCursor:
        if self._closed:
            raise err.ProgrammingError("Cursor closed")
        result = self._result
        if result is None:
            raise err.ProgrammingError("execute() first")
        return result

    async def fetchone(self) -> Any:
        """Resolves to the next row, or None at the end."""
        result = self._current()
        if isinstance(result, SSCursor):
            return await result.fetchone()
        return result.fetchone()

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        """Resolves to up to ``size`` (default :attr:`arraysize`) rows."""
        result = self._current()
        if isinstance(result, SSCursor):
            return await result.fetchmany(size or self._arraysize)
        return result.fetchmany(size or self._arraysize)

    async def fetchall(self) -> Sequence[Any]:
        """Resolves to all remaining rows."""
        result = self._current()
        if isinstance(result, SSCursor):
            return await result.fetchall()
        return result.fetchall()

    async def scroll(self, value: int, mode: str = "relative") -> None:
        """Move the row pointer (streaming results only forward)."""
        result = self._current()
        if isinstance(result, SSCursor):
            await result.scroll(value, mode)
        else:
            result.scroll(value, mode)

    async def nextset(self) -> bool | None:
        """Advance to the next result set.

        :returns: (resolves to) True, or None when there is none (PyMySQL's
            values).
        """
        result = self._current()
        return True if await result.nextset() else None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    # -- attributes ---------------------------------------------------------------

    @property
    def rowcount(self) -> int | None:
        """Rows affected or buffered by the last statement; -1 before any."""
        result = self._result
        return -1 if result is None else result.rowcount

    @property
    def lastrowid(self) -> int | None:
        """AUTO_INCREMENT id generated by the last INSERT."""
        result = self._result
        return None if result is None else result.lastrowid

    @property
    def description(self) -> Any:
        """DB-API column descriptions of the current result set, or None."""
        result = self._result
        return None if result is None else result.description

    @property
    def rownumber(self) -> int:
        """Index of the next row to fetch."""
        result = self._result
        return 0 if result is None else result.rownumber

    @property
    def warning_count(self) -> int:
        """Warnings the server reported for the last statement."""
        result = self._result
        return 0 if result is None else result.warning_count

    @property
    def arraysize(self) -> int:
        """Default batch size of :meth:`fetchmany`."""
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    @property
    def closed(self) -> bool:
        return self._closed

    # -- closing --------------------------------------------------------------------

    async def close(self) -> None:
        """Finish a streaming result (so the connection is usable) and close
        the cursor.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._drop_stream()
        self._result = None

    async def __aenter__(self) -> AsyncCursor:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncCursor {self._class.__name__} rowcount={self.rowcount}>"
