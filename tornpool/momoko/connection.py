"""Momoko's ``Connection`` and ``connect()`` on tornpool.

A :class:`Connection` is either standalone (``momoko.connect(dsn)``, or
``Connection(dsn).connect()``) over one :class:`tornpool.Connection`, or what
:meth:`tornpool.momoko.Pool.getconn` hands out, over a pool lease.  Its
methods return Futures, as Momoko's do: ``execute``, ``callproc``,
``transaction`` and ``ping`` resolve to cursors (or a list of them),
``register_json`` to None; ``mogrify`` is synchronous and returns bytes;
``close`` is synchronous.

Differences from Momoko (psycopg2) that code may notice:

* the SQL is MySQL's; placeholders are ``%s`` / ``%(name)s`` as in psycopg2,
  with PyMySQL's escaping; without parameters nothing is interpolated, so
  ``SELECT 'a%s'`` is sent as written;
* ``callproc`` follows PyMySQL: the cursor holds the procedure's first result
  set (later ones are read and dropped, so the connection is free again);
  OUT and INOUT values are read with ``SELECT @_procname_0, ...``;
* ``register_hstore`` raises :class:`~tornpool.errors.NotSupportedError`;
* ``server_version`` is an int (``101106`` for 10.11.6), the version string
  is ``server_version_string``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import tornpool
from tornpool.errors import ConnectionClosed, InterfaceError, MySQLError, NotSupportedError
from tornpool.momoko.cursors import (
    JSONSetting,
    cursor_class,
    default_cursor_class,
    drain,
    version_number,
)
from tornpool.momoko.dsn import parse
from tornpool.momoko.futures import app_loop, failed, finish, relay, spawn, translate

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.momoko.pool import Pool

__all__ = ["Connection", "connect", "statement_parts"]

log = logging.getLogger("tornpool.momoko")

HSTORE_MESSAGE = (
    "hstore is a PostgreSQL type with no MySQL equivalent; store the mapping as JSON "
    "(a JSON column, JSON_OBJECT()) and decode it (see docs/migrating-from-momoko.md)")


def statement_parts(statement: Any) -> tuple[str, Any]:
    """``(sql, parameters)`` of one item of a transaction: a string, or a
    ``(sql, parameters)`` tuple or list (parameters optional).

    :raises InterfaceError: anything else.
    """
    if isinstance(statement, (str, bytes)):
        return statement, None  # type: ignore[return-value]
    if isinstance(statement, (tuple, list)) and 1 <= len(statement) <= 2:
        return statement[0], (statement[1] if len(statement) == 2 else None) or None
    raise InterfaceError(0, f"a transaction statement is a str or (sql, parameters), not {statement!r}")


class Connection:
    """One Momoko connection; see the module docstring.

    :param dsn: libpq ``key=value`` string or ``mysql://`` URL (see
        :mod:`tornpool.momoko.dsn`).
    :param connection_factory: ``RealDictConnection``, ``DictConnection`` or
        ``NamedTupleConnection`` (sets the default cursor factory).
    :param cursor_factory: default cursor class (:mod:`tornpool.momoko.cursors`).
    :param ioloop: accepted and ignored (Tornado 6 has one loop per thread).
    :param setsession: statements run right after connecting; if one fails,
        connecting fails.
    :raises InterfaceError: an unsupported factory.
    """

    def __init__(self, dsn: str, connection_factory: Any = None, cursor_factory: Any = None,
                 ioloop: Any = None, setsession: Sequence[Any] = ()) -> None:
        self.dsn = dsn
        self.connection_factory = connection_factory
        self.cursor_factory = cursor_factory
        self.ioloop = ioloop
        self.setsession = tuple(setsession)
        self._default = default_cursor_class(connection_factory, cursor_factory)
        self._json = JSONSetting()
        self._target: Any = None
        self._pool: Pool | None = None
        #: The server's version as an int (``101106`` for 10.11.6), once connected.
        self.server_version: int | None = None
        #: The server's version string, once connected.
        self.server_version_string: str | None = None
        self._closing: asyncio.Future[None] | None = None
        self._closed = False

    @classmethod
    def on_lease(cls, lease: tornpool.PoolConnection, pool: Pool, default: type[Any],
                 json_setting: JSONSetting) -> Connection:
        """The Connection :meth:`Pool.getconn` resolves to: over ``lease``,
        with the pool's default cursor class and JSON setting."""
        self = cls.__new__(cls)
        self.dsn = pool.dsn
        self.connection_factory = pool.connection_factory
        self.cursor_factory = pool.cursor_factory
        self.ioloop = None
        self.setsession = tuple(pool.setsession)
        self._default = default
        self._json = json_setting
        self._target = lease
        self._pool = pool
        self._closing = None
        self._closed = False
        self._note_version(lease.server_version)
        return self

    def _note_version(self, version: str) -> None:
        self.server_version_string = version
        self.server_version = version_number(version)

    # -- state --------------------------------------------------------------------------

    @property
    def pool(self) -> Pool | None:
        """The pool this connection was taken from (None if standalone)."""
        return self._pool

    @property
    def lease(self) -> tornpool.PoolConnection | None:
        """The tornpool lease under a pooled connection (None if standalone)."""
        return self._target if self._pool is not None else None

    @property
    def native(self) -> Any:
        """The tornpool object underneath: a :class:`tornpool.Connection`, or
        a :class:`tornpool.PoolConnection` lease (None before ``connect()``)."""
        return self._target

    @property
    def closed(self) -> bool:
        """True before ``connect()``, after ``close()``, once the link is lost,
        and (pooled) once given back with ``putconn``."""
        target = self._target
        return target is None or self._closed or bool(target.closed)

    def _native(self) -> Any:
        target = self._target
        if target is None:
            raise ConnectionClosed(0, "connection is not open (call connect() first)")
        return target

    # -- connecting --------------------------------------------------------------------

    def connect(self) -> asyncio.Future[Connection]:
        """Open the connection.

        :returns: a Future resolving to this connection.
        :raises OperationalError: unreachable server (2003/2002), bad
            credentials (1045), unknown database (1049); a setsession
            statement failed (its error).
        :raises DSNError: a malformed DSN.
        """
        return spawn(self._connect())

    async def _connect(self) -> Connection:
        if self._target is not None:
            raise InterfaceError(0, "this connection is connected already")
        kwargs = parse(self.dsn)
        kwargs.setdefault("autocommit", True)
        conn = await tornpool.connect(**kwargs)
        try:
            if self.setsession:
                await conn.setup_session(self.setsession)
        except BaseException:
            conn.terminate()
            raise
        self._target = conn
        self._note_version(conn.server_version)
        return self

    # -- statements ----------------------------------------------------------------------

    def _class(self, cursor_factory: Any) -> type[Any]:
        return cursor_class(cursor_factory) or self._default

    def execute(self, operation: str | bytes, parameters: Any = (),
                cursor_factory: Any = None) -> asyncio.Future[Any]:
        """Run one statement; without ``parameters`` nothing is interpolated.

        :returns: a Future resolving to a cursor of the ``cursor_factory``
            class (default: the connection's).
        :raises ProgrammingError, IntegrityError, ...: the server's error, or
            a malformed placeholder.
        :raises OperationalError: the link is lost (``ConnectionLost``).
        """
        try:
            loop = asyncio.get_running_loop()
            cls = self._class(cursor_factory)
            native = self._native().execute(operation, parameters or None, cursor=cls.native)
        except Exception as exc:
            return failed(exc)
        loads = self._json.loads
        return relay(native, lambda result: cls(result, loads), loop)

    def callproc(self, procname: str, parameters: Sequence[Any] = (),
                 cursor_factory: Any = None) -> asyncio.Future[Any]:
        """Call a stored procedure (PyMySQL's semantics, see the module docstring).

        :returns: a Future resolving to a cursor on its first result set.
        """
        return spawn(self._callproc(procname, parameters, cursor_factory))

    async def _callproc(self, procname: str, parameters: Sequence[Any], cursor_factory: Any) -> Any:
        cls = self._class(cursor_factory)
        if cls.streaming:
            raise InterfaceError(0, "callproc() returns buffered cursors")
        result = await self._native().callproc(procname, tuple(parameters or ()))
        cursor = cls(result, self._json.loads)
        await drain(result)
        return cursor

    def mogrify(self, operation: str, parameters: Any = ()) -> bytes:
        """The statement :meth:`execute` would send, as bytes (synchronous).

        :raises ProgrammingError: a malformed placeholder, or placeholders
            and parameters that do not match in number.
        """
        target = self._native()
        try:
            text = target.mogrify(operation, parameters or None)
        except Exception as exc:
            new = translate(exc)
            if new is exc:
                raise
            raise new from exc
        encoding = target.connection.raw.encoding
        return text.encode(encoding, "surrogateescape")  # type: ignore[no-any-return]

    def transaction(self, statements: Sequence[Any], cursor_factory: Any = None,
                    auto_rollback: bool = True) -> asyncio.Future[list[Any]]:
        """BEGIN; each statement (a str or ``(sql, parameters)``); COMMIT.

        :param auto_rollback: on an error, ROLLBACK before raising it (a
            failed ROLLBACK is logged, not raised).
        :returns: a Future resolving to one cursor per statement.
        :raises: the failing statement's error.
        """
        return spawn(self.run_transaction(statements, cursor_factory, auto_rollback))

    async def run_transaction(self, statements: Sequence[Any], cursor_factory: Any = None,
                              auto_rollback: bool = True, begin: bool = True) -> list[Any]:
        """The coroutine behind :meth:`transaction` (``begin=False``: BEGIN
        was sent already)."""
        cls = self._class(cursor_factory)
        if cls.streaming:
            raise InterfaceError(0, "transaction() returns buffered cursors")
        parts = [statement_parts(s) for s in statements]
        target = self._native()
        if begin:
            await target.begin()
        cursors: list[Any] = []
        try:
            for sql, params in parts:
                cursors.append(cls(await target.execute(sql, params, cursor=cls.native),
                                   self._json.loads))
            await target.commit()
        except BaseException:
            if auto_rollback and not target.closed:
                try:
                    await target.rollback()
                except MySQLError as exc:
                    log.warning("tornpool.momoko: ROLLBACK after a failed transaction failed: %s", exc)
            raise
        return cursors

    def ping(self) -> asyncio.Future[Any]:
        """``SELECT 1 AS ping``; a Future resolving to its cursor."""
        return self.execute("SELECT 1 AS ping")

    # -- type registration ---------------------------------------------------------------

    def register_json(self, globally: bool = False, loads: Any = None) -> asyncio.Future[None]:
        """Decode JSON columns with ``loads`` (default :func:`json.loads`).

        MySQL sends JSON values with their own type and they are decoded;
        MariaDB sends them as text, which stays ``str``.  On a pooled
        connection this applies to the whole pool.

        :returns: a Future resolving to None.
        """
        return self._json.register(loads, app_loop())

    def register_hstore(self, globally: bool = False, unicode: bool = False) -> asyncio.Future[None]:
        """hstore does not exist in MySQL.

        :returns: a Future failing with :class:`~tornpool.errors.NotSupportedError`.
        """
        return failed(NotSupportedError(0, HSTORE_MESSAGE))

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (synchronous; the socket is released in the
        background).  Pooled: the connection is closed now and replaced when
        given back with ``putconn``."""
        target = self._target
        if target is None or target.closed:
            return
        if self._pool is not None:
            target.terminate()
            return
        self._closed = True
        self._closing = finish(target.close, target.loop)

    async def wait_closed(self) -> None:
        """After :meth:`close`: resolves once the socket is released."""
        if self._closing is not None:
            await self._closing

    def __repr__(self) -> str:
        kind = "pooled" if self._pool is not None else "standalone"
        return f"<tornpool.momoko.Connection {kind}{' closed' if self.closed else ''}>"


def connect(dsn: str, connection_factory: Any = None, cursor_factory: Any = None,
            ioloop: Any = None, setsession: Sequence[Any] = ()) -> asyncio.Future[Connection]:
    """Open a :class:`Connection`.

    :returns: a Future resolving to the connected :class:`Connection`.
    :raises OperationalError: the server is unreachable or refused the login.
    :raises DSNError: a malformed DSN.
    """
    return Connection(dsn, connection_factory, cursor_factory, ioloop, setsession).connect()
