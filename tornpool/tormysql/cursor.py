"""TorMySQL's cursors on tornpool: buffered ``Cursor``/``DictCursor`` and
streaming ``SSCursor``/``SSDictCursor``.

As in TorMySQL, the methods that talk to the server return Futures:
``execute`` (resolving to the row count, as PyMySQL returns it),
``executemany``, ``callproc``, ``nextset`` and ``close``.  On the buffered
classes every row is in memory once ``execute`` resolves, so ``fetchone``,
``fetchmany``, ``fetchall``, ``scroll`` and iteration are synchronous; on the
streaming classes they read the network and return Futures (``read_next``
too), and ``async for row in cursor`` walks the result in constant memory.

``with cursor:`` closes a buffered cursor and raises
:class:`CursorNotReadAllDataError` if result sets of its statement are still
unread; streaming cursors refuse ``with`` (use ``async with``) and plain
iteration (:class:`CursorNotIterError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import pymysql.cursors

import tornpool
from tornpool.errors import InterfaceError, ProgrammingError
from tornpool.momoko.futures import app_loop, relay

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.tormysql.client import Client

__all__ = [
    "Cursor", "DictCursor", "SSCursor", "SSDictCursor",
    "CursorNotReadAllDataError", "CursorNotIterError", "cursor_class", "query_args", "task", "done",
]


class CursorNotReadAllDataError(InterfaceError):  # type: ignore[misc]  # PyMySQL is untyped
    """A buffered cursor left ``with`` while result sets of its statement were
    still unread (call ``nextset()`` until it resolves to None)."""


class CursorNotIterError(InterfaceError, TypeError):  # type: ignore[misc]  # PyMySQL is untyped
    """A streaming cursor was iterated synchronously; use ``async for``."""


def task(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Run ``coro`` as a task on the application's loop; its Future."""
    return app_loop().create_task(coro)


def done(value: Any = None, exc: BaseException | None = None) -> asyncio.Future[Any]:
    """A Future already resolved to ``value`` (or failed with ``exc``)."""
    fut: asyncio.Future[Any] = app_loop().create_future()
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
    return fut


def _same(exc: BaseException) -> BaseException:
    return exc


def query_args(args: Any) -> Any:
    """Parameters as PyMySQL wants them: a lone value (``execute(sql, "1")``,
    which old PyMySQL accepted) becomes a 1-tuple."""
    if args is None or isinstance(args, (tuple, list, dict)):
        return args
    return (args,)


#: The result attributes a cursor shows, and their values before any execute().
_BEFORE_EXECUTE: dict[str, Any] = {
    "rowcount": -1, "lastrowid": None, "description": None, "rownumber": 0, "warning_count": 0}


class Cursor:
    """Buffered cursor; rows are tuples.  See the module docstring."""

    #: The tornpool cursor class statements run with.
    native_class: ClassVar[type[Any]] = tornpool.Cursor
    streaming: ClassVar[bool] = False

    __slots__ = ("_client", "_result", "_closed", "_arraysize")

    def __init__(self, client: Client) -> None:
        self._client: Client | None = client
        self._result: Any = None
        self._closed = False
        self._arraysize = 1

    @classmethod
    def holding(cls, result: Any) -> Cursor:
        """A closed cursor over the result of a statement that ran without
        one (the helpers' fast path): its rows stay readable."""
        cursor = cls.__new__(cls)
        cursor._client = None
        cursor._result = result
        cursor._closed = True
        cursor._arraysize = 1
        return cursor

    @property
    def connection(self) -> Client | None:
        """The client (or pool connection) this cursor runs on (None for a
        cursor the helpers' pool returned)."""
        return self._client

    def _client_or_fail(self) -> Client:
        client = self._client
        if self._closed or client is None:
            raise ProgrammingError(0, "Cursor closed")
        return client

    def _target(self) -> Any:
        return self._client_or_fail().native

    def _results(self) -> Any:
        result = self._result
        if result is None:
            raise ProgrammingError(0, "execute() first")
        return result

    # -- statements -----------------------------------------------------------------

    def execute(self, query: str, args: Any = None) -> asyncio.Future[int]:
        """Run one statement.

        :returns: a Future resolving to the number of rows (buffered) or
            changed (PyMySQL's return value).
        :raises ProgrammingError, IntegrityError, ...: the server's error.
        :raises OperationalError: the link is lost.
        """
        try:
            client = self._client_or_fail()
            client.record(query)
            native = client.native.execute(query, query_args(args), cursor=self.native_class)
        except Exception as exc:
            return done(exc=exc)
        return relay(native, self._loaded, native.get_loop(), _same)

    def _loaded(self, result: Any) -> int:
        self._result = result
        if self._client is not None:
            self._client.note(self, result)
        return result.rowcount  # type: ignore[no-any-return]

    def executemany(self, query: str, args: Iterable[Any]) -> asyncio.Future[int | None]:
        """Run ``query`` once per parameter set (``INSERT ... VALUES`` is
        batched as PyMySQL batches it).

        :returns: a Future resolving to the total row count (None without args).
        """
        return task(self._executemany(query, list(args)))

    async def _executemany(self, query: str, seq: list[Any]) -> int | None:
        target = self._target()
        if not seq:
            return None
        kind = tornpool.DictCursor if self.native_class.as_dict else tornpool.Cursor
        return self._loaded(await target.executemany(query, [query_args(a) for a in seq], cursor=kind))

    def callproc(self, procname: str, args: Sequence[Any] = ()) -> asyncio.Future[Sequence[Any]]:
        """Call a stored procedure (OUT values: ``SELECT @_procname_0, ...``).

        :returns: a Future resolving to ``args``, as PyMySQL returns it.
        """
        return task(self._callproc(procname, args))

    async def _callproc(self, procname: str, args: Sequence[Any]) -> Sequence[Any]:
        kind = tornpool.DictCursor if self.native_class.as_dict else tornpool.Cursor
        self._loaded(await self._target().callproc(procname, args, cursor=kind))
        return args

    def nextset(self) -> asyncio.Future[bool | None]:
        """Move to the next result set; a Future resolving to True, or None
        when there is none."""
        return task(self._nextset())

    async def _nextset(self) -> bool | None:
        return True if await self._results().nextset() else None

    def mogrify(self, query: str, args: Any = None) -> str:
        """The statement :meth:`execute` would send."""
        return self._target().mogrify(query, query_args(args))  # type: ignore[no-any-return]

    # -- rows ----------------------------------------------------------------------

    def fetchone(self) -> Any:
        """The next row, or None."""
        return self._results().fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        """Up to ``size`` (default :attr:`arraysize`) next rows."""
        return self._results().fetchmany(size or self._arraysize)

    def fetchall(self) -> Any:
        """The remaining rows (a tuple, as PyMySQL returns them)."""
        return self._results().fetchall()

    def scroll(self, value: int, mode: str = "relative") -> Any:
        """Move the row pointer.

        :raises IndexError: out of range.
        """
        return self._results().scroll(value, mode)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchone, None)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._async_rows()

    async def _async_rows(self) -> AsyncIterator[Any]:
        for row in self:
            yield row

    # -- attributes ------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # rowcount, lastrowid, description, rownumber, warning_count: the
        # last result's (TorMySQL delegated them to PyMySQL's cursor).
        try:
            before = _BEFORE_EXECUTE[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None
        result = self._result
        return before if result is None else getattr(result, name)

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    # -- closing ---------------------------------------------------------------------

    def close(self) -> asyncio.Future[None]:
        """Close the cursor (the rows stay readable); result sets of its
        statement still unread are read and dropped first, as TorMySQL did,
        so that the connection is free.  A Future resolving to None."""
        unread = self._unread()
        self._closed = True
        return task(self._drain()) if unread else done()

    async def _drain(self) -> None:
        while await self._results().nextset():
            pass

    def _unread(self) -> bool:
        client = self._client
        if self._result is None or client is None or client.last_cursor is not self:
            return False
        target = client.native_or_none
        return target is not None and not target.closed and bool(target.has_unread_result)

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if et is None and self._unread():
            raise CursorNotReadAllDataError(
                0, "this cursor's statement has unread result sets; the connection's next "
                   "statement would drop them (read them with nextset())")
        self.close()

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<tornpool.tormysql.{type(self).__name__} rowcount={self.rowcount}>"


class DictCursor(Cursor):
    """Buffered cursor; rows are dicts."""

    native_class = tornpool.DictCursor
    __slots__ = ()


class SSCursor(Cursor):
    """Streaming cursor; rows are tuples, fetched with Futures."""

    native_class = tornpool.SSCursor
    streaming = True
    __slots__ = ()

    def fetchone(self) -> asyncio.Future[Any]:
        """A Future resolving to the next row, or None at the end."""
        return task(self._results().fetchone())

    def read_next(self) -> asyncio.Future[Any]:
        """Same as :meth:`fetchone`."""
        return self.fetchone()

    def fetchmany(self, size: int | None = None) -> asyncio.Future[Any]:
        """A Future resolving to up to ``size`` next rows."""
        return task(self._results().fetchmany(size or self._arraysize))

    def fetchall(self) -> asyncio.Future[Any]:
        """A Future resolving to every remaining row (prefer ``async for``)."""
        return task(self._results().fetchall())

    def scroll(self, value: int, mode: str = "relative") -> asyncio.Future[None]:
        """Skip rows forward (a Future).

        :raises NotSupportedError: backwards.
        """
        return task(self._results().scroll(value, mode))

    def __iter__(self) -> Iterator[Any]:
        raise CursorNotIterError(0, f"{type(self).__name__} streams: use 'async for row in cursor'")

    async def _async_rows(self) -> AsyncIterator[Any]:
        async for row in self._results():
            yield row

    def close(self) -> asyncio.Future[None]:
        """Discard the rest of the result (so the connection is usable);
        a Future resolving to None."""
        self._closed = True
        result = self._result
        return done() if result is None else task(result.close())

    def __enter__(self) -> Cursor:
        raise InterfaceError(0, f"{type(self).__name__} does not support 'with'; use 'async with'")

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        raise InterfaceError(0, f"{type(self).__name__} does not support 'with'; use 'async with'")


class SSDictCursor(SSCursor):
    """Streaming cursor; rows are dicts."""

    native_class = tornpool.SSDictCursor
    __slots__ = ()


_EQUIVALENT: dict[Any, type[Cursor]] = {
    tornpool.Cursor: Cursor,
    tornpool.DictCursor: DictCursor,
    tornpool.SSCursor: SSCursor,
    tornpool.SSDictCursor: SSDictCursor,
    pymysql.cursors.Cursor: Cursor,
    pymysql.cursors.DictCursor: DictCursor,
    pymysql.cursors.SSCursor: SSCursor,
    pymysql.cursors.SSDictCursor: SSDictCursor,
}


def cursor_class(cls: Any) -> type[Cursor] | None:
    """The facade's cursor class for ``cls``: one of ours, tornpool's or
    PyMySQL's (None for None).

    :raises InterfaceError: another class.
    """
    if cls is None:
        return None
    if isinstance(cls, type) and issubclass(cls, Cursor):
        return cls
    found = _EQUIVALENT.get(cls)
    if found is None:
        raise InterfaceError(0, f"unsupported cursor class {cls!r}: use tornpool.tormysql's "
                                "Cursor, DictCursor, SSCursor or SSDictCursor")
    return found
