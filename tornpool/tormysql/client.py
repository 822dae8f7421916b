"""TorMySQL's ``Client`` (one connection) on :class:`tornpool.Connection`.

Arguments are PyMySQL's, as in TorMySQL: keywords (``host``, ``port``,
``user``, ``passwd``/``password``, ``db``/``database``, ``charset``,
``autocommit`` -- default False, as in PyMySQL --, ``sql_mode``,
``init_command``, ``cursorclass``, ``read_timeout``...), or the first five
positionally (``host, user, password, database, port``), or a ``mysql://``
DSN first.  ``read_timeout`` is a per-statement deadline (tornpool's: the
statement fails with :class:`~tornpool.errors.CommandTimeout` and the
connection is closed).

Methods that talk to the server return Futures (``connect``, ``close``,
``autocommit``, ``begin``, ``commit``, ``rollback``, ``show_warnings``,
``select_db``, ``query``, ``next_result``, ``kill``, ``ping``,
``set_charset``); ``cursor()``, ``escape()``, ``insert_id()``,
``thread_id()`` and PyMySQL's plain attributes (``host``, ``charset``,
``encoding``...) are synchronous.  ``with client as cursor:`` gives a cursor;
``async with client as cursor:`` also commits on success and rolls back on an
exception.
"""

from __future__ import annotations

import asyncio
import re
from types import TracebackType
from typing import Any

import tornpool
from tornpool.errors import ConnectionClosed, InterfaceError, OperationalError, ProgrammingError
from tornpool.tormysql.cursor import Cursor, cursor_class, done, task

__all__ = ["Client", "connect_arguments"]

#: The order old PyMySQL (which TorMySQL passed ``*args`` to) took them in.
_POSITIONAL = ("host", "user", "password", "database", "port")
#: PyMySQL warns about these names; TorMySQL code uses them everywhere.
_ALIASES = {"passwd": "password", "db": "database"}
_CHARSET = re.compile(r"^[A-Za-z0-9_]+$")


def connect_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]
                      ) -> tuple[str | None, dict[str, Any], type[Cursor]]:
    """``(dsn, tornpool connect arguments, default cursor class)`` for
    TorMySQL's ``(*args, **kwargs)``.

    :raises TypeError: too many positional arguments, or one given twice.
    :raises InterfaceError: an unsupported ``cursorclass``.
    """
    kwargs = dict(kwargs)
    dsn = None
    if args and isinstance(args[0], str) and "://" in args[0]:
        dsn, args = args[0], args[1:]
    if len(args) > len(_POSITIONAL):
        raise TypeError(f"at most {len(_POSITIONAL)} positional arguments "
                        f"({', '.join(_POSITIONAL)}); pass the others by keyword")
    for name, value in zip(_POSITIONAL, args):
        if name in kwargs:
            raise TypeError(f"got multiple values for argument {name!r}")
        kwargs[name] = value
    for old, new in _ALIASES.items():
        if old in kwargs:
            value = kwargs.pop(old)
            if new in kwargs:
                raise TypeError(f"got both {old!r} and {new!r}")
            kwargs[new] = value
    cls = cursor_class(kwargs.pop("cursorclass", None)) or Cursor
    kwargs.setdefault("autocommit", False)
    return dsn, kwargs, cls


class Client:
    """One connection; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._dsn, self._kwargs, self._cursor_cls = connect_arguments(args, kwargs)
        self._target: Any = None
        self._autocommit = bool(self._kwargs["autocommit"])
        self._last: Cursor | None = None
        self._last_result: Any = None
        self._insert_id = 0

    # -- what cursors use ------------------------------------------------------------

    @property
    def native(self) -> Any:
        """The tornpool connection (or pool lease) underneath.

        :raises ConnectionClosed: never connected.
        """
        target = self._target
        if target is None:
            raise ConnectionClosed(0, "not connected (call connect() first)")
        return target

    @property
    def native_or_none(self) -> Any:
        """:attr:`native`, or None before ``connect()``."""
        return self._target

    @property
    def default_cursor_class(self) -> type[Cursor]:
        """The class :meth:`cursor` makes when given none."""
        return self._cursor_cls

    @property
    def last_cursor(self) -> Cursor | None:
        """The cursor whose statement ran last on this connection."""
        return self._last

    def note(self, cursor: Cursor | None, result: Any) -> None:
        """Record the result of a statement just run (for ``insert_id()``,
        ``next_result()`` and unread-result checks)."""
        self._last, self._last_result = cursor, result
        if result.lastrowid:
            self._insert_id = result.lastrowid

    def record(self, sql: Any) -> None:
        """A statement is about to run (pool connections remember it with
        ``debug_connection_used``)."""

    def _call(self, method: str, *args: Any) -> asyncio.Future[Any]:
        try:
            return getattr(self.native, method)(*args)  # type: ignore[no-any-return]
        except Exception as exc:
            return done(exc=exc)

    # -- connecting ------------------------------------------------------------------

    def connect(self) -> asyncio.Future[Client]:
        """Open the connection; a Future resolving to this client.

        :raises OperationalError: unreachable server, refused login.
        """
        return task(self._connect())

    async def _connect(self) -> Client:
        if self._target is not None and not self._target.closed:
            raise InterfaceError(0, "this client is connected already")
        self._target = await self.reopen()
        return self

    async def reopen(self) -> Any:
        """Open a new tornpool connection with this client's arguments
        (``connect()`` and ``ping(reconnect=True)`` use it)."""
        return await tornpool.connect(self._dsn, **self._kwargs)

    def close(self) -> asyncio.Future[None]:
        """Close the connection; a Future resolving to None."""
        target = self._target
        if target is None or target.closed:
            return done()
        return task(target.close())

    # -- transactions and session ----------------------------------------------------------

    def autocommit(self, value: bool) -> asyncio.Future[None]:
        """Turn autocommit on or off; a Future resolving to None."""
        fut = self._call("autocommit", bool(value))
        self._autocommit = bool(value)
        return fut

    def begin(self) -> asyncio.Future[None]:
        """BEGIN; a Future resolving to None."""
        return self._call("begin")

    def commit(self) -> asyncio.Future[None]:
        """COMMIT; a Future resolving to None."""
        return self._call("commit")

    def rollback(self) -> asyncio.Future[None]:
        """ROLLBACK; a Future resolving to None."""
        return self._call("rollback")

    def select_db(self, db: str) -> asyncio.Future[None]:
        """Change the default database; a Future resolving to None."""
        return self._call("select_db", db)

    def set_charset(self, charset: str) -> asyncio.Future[None]:
        """``SET NAMES charset`` (see docs/migrating-from-tormysql.md for what
        changes and what does not); a Future resolving to None.

        :raises ProgrammingError: not a character set name.
        """
        if not isinstance(charset, str) or not _CHARSET.match(charset):
            return done(exc=ProgrammingError(0, f"not a character set name: {charset!r}"))
        return task(self._run("SET NAMES " + charset))

    async def _run(self, sql: str) -> None:
        await self.native.execute(sql)

    def show_warnings(self) -> asyncio.Future[tuple[Any, ...]]:
        """``SHOW WARNINGS``; a Future resolving to its rows (a tuple)."""
        return task(self._show_warnings())

    async def _show_warnings(self) -> tuple[Any, ...]:
        cur = await self.native.execute("SHOW WARNINGS")
        return tuple(cur.fetchall())

    def kill(self, thread_id: int) -> asyncio.Future[None]:
        """``KILL thread_id``; a Future resolving to None."""
        return task(self._run("KILL %d" % int(thread_id)))

    def ping(self, reconnect: bool = True) -> asyncio.Future[None]:
        """A round trip; with ``reconnect``, a dead connection is replaced by
        a new one first.  A Future resolving to None.

        :raises OperationalError: the server does not answer.
        """
        return task(self._ping(reconnect))

    async def _ping(self, reconnect: bool) -> None:
        target = self._target
        if target is not None and not target.closed:
            try:
                await target.ping()
                return
            except OperationalError:
                if not reconnect:
                    raise
        elif not reconnect:
            raise ConnectionClosed(0, "connection is closed")
        self._target = await self.reopen()
        await self._target.ping()

    # -- statements -----------------------------------------------------------------

    def cursor(self, cursor_cls: Any = None) -> Cursor:
        """A cursor of ``cursor_cls`` (default: the ``cursorclass`` argument,
        else :class:`~tornpool.tormysql.cursor.Cursor`).

        :raises InterfaceError: an unsupported class.
        """
        return (cursor_class(cursor_cls) or self._cursor_cls)(self)

    def query(self, sql: str, unbuffered: bool = False) -> asyncio.Future[int]:
        """Run ``sql`` without a cursor; a Future resolving to the row count.
        Its rows are not kept (use a cursor); ``unbuffered`` makes no
        difference."""
        return task(self._query(sql))

    async def _query(self, sql: str) -> int:
        self.record(sql)
        result = await self.native.execute(sql)
        self.note(None, result)
        return result.rowcount  # type: ignore[no-any-return]

    def next_result(self) -> asyncio.Future[int | None]:
        """Move the last statement's results to its next result set; a
        Future resolving to its row count, or None when there is none."""
        return task(self._next_result())

    async def _next_result(self) -> int | None:
        result = self._last_result
        if result is None or not await result.nextset():
            return None
        return result.rowcount  # type: ignore[no-any-return]

    # -- PyMySQL's synchronous attributes ---------------------------------------------------

    def escape(self, obj: Any, mapping: Any = None) -> str:
        """``obj`` as an SQL literal."""
        return self.native.escape(obj)  # type: ignore[no-any-return]

    def escape_string(self, s: str) -> str:
        """``s`` escaped for use inside quotes (as the server's SQL mode wants)."""
        return self.escape(str(s))[1:-1]

    def literal(self, obj: Any) -> str:
        """Same as :meth:`escape`."""
        return self.escape(obj)

    def insert_id(self) -> int:
        """The AUTO_INCREMENT value of the last INSERT through this connection."""
        return self._insert_id

    def thread_id(self) -> int:
        """The server's id for this connection."""
        return self.native.thread_id  # type: ignore[no-any-return]

    def get_server_info(self) -> str:
        """The server's version string."""
        return self.native.server_version  # type: ignore[no-any-return]

    def get_autocommit(self) -> bool:
        return self._autocommit

    @property
    def autocommit_mode(self) -> bool:
        """Whether autocommit is on (as this client set it)."""
        return self._autocommit

    @property
    def open(self) -> bool:
        """True while connected."""
        target = self._target
        return target is not None and not target.closed

    @property
    def closed(self) -> bool:
        return not self.open

    @property
    def server_version(self) -> str:
        return self.native.server_version  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        # PyMySQL's plain attributes (host, port, user, db, charset, encoding...)
        if name.startswith("_"):
            raise AttributeError(name)
        target = self.__dict__.get("_target")
        if target is None:
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r} before connect()")
        value = getattr(target.connection.raw, name)
        if callable(value):
            raise AttributeError(f"PyMySQL's {name}() is not available through tornpool.tormysql")
        return value

    # -- context managers ----------------------------------------------------------------

    def __enter__(self) -> Cursor:
        return self.cursor()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    async def __aenter__(self) -> Cursor:
        return self.cursor()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if et is not None:
            await self.rollback()
        else:
            await self.commit()

    def __del__(self) -> None:
        # TorMySQL closed its connection here; tornpool.Connection would also
        # release the socket once collected, but code calls __del__() itself.
        target = self.__dict__.get("_target")
        if isinstance(target, tornpool.Connection) and not target.closed:
            try:
                target.terminate()
            except Exception:  # noqa: BLE001 - a closed loop at collection time
                pass

    def __str__(self) -> str:
        return f"<tornpool.tormysql.{type(self).__name__} {self._target!r}>"
