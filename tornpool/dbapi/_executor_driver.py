"""What the executor pool knows about each DB-API driver: :class:`Driver`.

DB-API 2 says how to connect, run statements, commit and roll back; it does
not say how to turn autocommit on, whether a transaction is open, whether a
connection broke, how to ping, reset or interrupt one.  A :class:`Driver`
holds those answers for one module.  :func:`driver_for` knows sqlite3,
mysqlclient (``MySQLdb``), PyMySQL, psycopg (3) and psycopg2, and falls back
to :func:`generic_driver` for any other module (autocommit through a
``conn.autocommit`` attribute or method, transactions tracked from the
statements, a broken connection guessed from ``OperationalError`` /
``InterfaceError``, ``SELECT 1`` as the ping, no reset, no interrupt).

Every callable runs in the connection's own thread, except ``interrupt``,
which runs in a helper thread while the owner is busy (it must be safe
there: sqlite3's ``interrupt()``, psycopg's ``cancel()``).  MySQL has no
such call: its statement is stopped with ``kill_sql`` (``KILL QUERY``) sent
on another connection, which the pool counts against its cap.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tornpool import errors

__all__ = ["Driver", "ExecutorConfigError", "driver_for", "generic_driver", "load_module",
           "first_keyword", "run_sql"]

Raw = Any  # a DB-API connection of some driver

#: MySQL client errors after which a connection is unusable.
MYSQL_FATAL = frozenset((2006, 2013, 2014, 2045, 2055, 1053, 1927, 4031))


class ExecutorConfigError(errors.InterfaceError, ValueError):  # type: ignore[misc]
    """An executor pool's argument is invalid: not a DB-API module, a bad
    size or option, a driver without autocommit asked for autocommit."""


@dataclasses.dataclass(frozen=True)
class Driver:
    """How the executor pool handles one DB-API module (see the module
    docstring).  Build one with :func:`dataclasses.replace` on
    :func:`driver_for`'s answer to change a single behaviour.

    :ivar name: the module's name.
    :ivar set_autocommit: ``(conn, on)``: turn autocommit on or off.
    :ivar in_transaction: ``(conn) -> bool | None``: whether a transaction
        is open after a call; None when the driver cannot tell (the pool
        then tracks BEGIN / START / COMMIT / ROLLBACK / END statements).
    :ivar broken: ``(conn, exc) -> bool``: whether the connection is
        unusable after a call that raised ``exc`` (or None).
    :ivar ping: ``(conn)``: raise if the connection is dead; None: nothing
        to check (an in-process database).
    :ivar reset: ``(conn)``: restore a fresh session, outside any
        transaction; None: the driver has no way (``session_reset="always"``
        then closes and replaces the connection).
    :ivar interrupt: ``(conn)``, from another thread: ask the running
        statement to stop; None: the driver has no such call.
    :ivar kill_sql: a statement that, sent on another connection to the same
        server, stops the statement of the connection whose ``server_id``
        fills its ``{}``; None: none.
    :ivar server_id: ``(conn) -> int | None``, at connect: what
        ``kill_sql`` needs (MySQL's connection id).
    :ivar begin_sql: the statement that opens a transaction in autocommit mode.
    """

    name: str
    set_autocommit: Callable[[Raw, bool], None]
    in_transaction: Callable[[Raw], bool | None]
    broken: Callable[[Raw, BaseException | None], bool]
    ping: Callable[[Raw], None] | None
    reset: Callable[[Raw], None] | None
    interrupt: Callable[[Raw], None] | None
    server_id: Callable[[Raw], Any]
    kill_sql: str | None = None
    begin_sql: str = "BEGIN"


def load_module(module: ModuleType | str) -> ModuleType:
    """``module`` itself, or the module of that name, checked to look like
    a DB-API 2 driver.

    :raises ExecutorConfigError: it does not import, or has no
        ``connect`` / ``paramstyle``.
    """
    if isinstance(module, str):
        try:
            module = importlib.import_module(module)
        except ImportError as exc:
            raise ExecutorConfigError("cannot import the DB-API module %r: %s" % (module, exc)) from exc
    if not isinstance(module, ModuleType):
        raise ExecutorConfigError("expected a DB-API 2 module (sqlite3, MySQLdb, psycopg...) or its "
                                  "name, not %r" % (module,))
    if not callable(getattr(module, "connect", None)) or not isinstance(
            getattr(module, "paramstyle", None), str):
        raise ExecutorConfigError("%s is not a DB-API 2 module (no connect() or paramstyle)"
                                  % module.__name__)
    return module


def first_keyword(sql: Any) -> str:
    """The first word of a statement, upper-cased (comments not skipped)."""
    if isinstance(sql, bytes):
        sql = sql.decode("utf-8", "replace")
    if not isinstance(sql, str):
        return ""
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    return words[0].rstrip(";").upper() if words else ""


# -- shared pieces ---------------------------------------------------------------------


def run_sql(conn: Raw, sql: str) -> None:
    """Run one statement whose result nobody reads (BEGIN, COMMIT, KILL...)."""
    cur = conn.cursor()
    try:
        cur.execute(sql)
        if cur.description is not None:
            cur.fetchall()
    finally:
        cur.close()


def _select_one(conn: Raw) -> None:
    run_sql(conn, "SELECT 1")


def _no_server_id(conn: Raw) -> None:
    return None


def _attr_autocommit(conn: Raw, on: bool) -> None:
    conn.autocommit = on


def _method_autocommit(conn: Raw, on: bool) -> None:
    conn.autocommit(on)


def _unknown_transaction(conn: Raw) -> bool | None:
    return None


def _class_guess(module: ModuleType) -> Callable[[Raw, BaseException | None], bool]:
    fatal = tuple(c for c in (getattr(module, "OperationalError", None),
                              getattr(module, "InterfaceError", None)) if isinstance(c, type))

    def broken(conn: Raw, exc: BaseException | None) -> bool:
        return exc is not None and bool(fatal) and isinstance(exc, fatal)

    return broken


# -- sqlite3 ---------------------------------------------------------------------------


def _sqlite_autocommit(conn: Raw, on: bool) -> None:
    if on:
        conn.isolation_level = None


def _sqlite_interrupt(conn: Raw) -> None:
    conn.interrupt()  # documented as safe from another thread


def _sqlite(module: ModuleType) -> Driver:
    return Driver(
        name="sqlite3",
        set_autocommit=_sqlite_autocommit,
        in_transaction=lambda conn: bool(conn.in_transaction),
        broken=lambda conn, exc: False,
        ping=None,
        reset=None,
        interrupt=_sqlite_interrupt,
        server_id=_no_server_id,
        # a deferred BEGIN that later writes fails at once when another
        # connection writes: take the write lock up front
        begin_sql="BEGIN IMMEDIATE",
    )


# -- MySQL: mysqlclient and PyMySQL ----------------------------------------------------


def _mysql_broken(conn: Raw, exc: BaseException | None) -> bool:
    if exc is None:
        return False
    args = getattr(exc, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code in MYSQL_FATAL:
        return True
    return not getattr(conn, "open", True)


def _mysqldb_in_transaction(conn: Raw) -> bool | None:
    # mysqlclient does not expose the server's "in transaction" flag; it
    # does know when autocommit is off, and then a transaction may be open.
    return None if conn.get_autocommit() else True


def _pymysql_in_transaction(conn: Raw) -> bool | None:
    return bool(conn.server_status & 1)  # SERVER_STATUS_IN_TRANS


def _mysql(module: ModuleType, name: str) -> Driver:
    return Driver(
        name=name,
        set_autocommit=_method_autocommit,
        in_transaction=_pymysql_in_transaction if name == "pymysql" else _mysqldb_in_transaction,
        broken=_mysql_broken,
        ping=(lambda conn: conn.ping(False)),
        reset=None,  # neither driver exposes COM_RESET_CONNECTION
        interrupt=None,
        server_id=lambda conn: conn.thread_id(),
        kill_sql="KILL QUERY {}",
    )


# -- PostgreSQL: psycopg and psycopg2 ---------------------------------------------------


def _pg_in_transaction(conn: Raw) -> bool | None:
    return conn.info.transaction_status in (2, 3)  # INTRANS, INERROR


def _pg_broken(conn: Raw, exc: BaseException | None) -> bool:
    if conn.closed:
        return True
    return bool(getattr(conn, "broken", False)) or conn.info.transaction_status == 4  # UNKNOWN


def _pg_reset(conn: Raw) -> None:
    before = conn.autocommit
    if not before:
        conn.autocommit = True  # DISCARD ALL cannot run inside a transaction block
    try:
        run_sql(conn, "DISCARD ALL")
    finally:
        if not before:
            conn.autocommit = False


def _pg_interrupt(conn: Raw) -> None:
    cancel = getattr(conn, "cancel_safe", None) or conn.cancel
    cancel()


def _pg_ping(conn: Raw) -> None:
    _select_one(conn)
    if _pg_in_transaction(conn):
        conn.rollback()


def _postgres(module: ModuleType, name: str) -> Driver:
    return Driver(
        name=name,
        set_autocommit=_attr_autocommit,
        in_transaction=_pg_in_transaction,
        broken=_pg_broken,
        ping=_pg_ping,
        reset=_pg_reset,
        interrupt=_pg_interrupt,
        server_id=_no_server_id,
    )


# -- anything else -----------------------------------------------------------------------


def generic_driver(module: ModuleType) -> Driver:
    """The behaviour for a DB-API module the pool has no profile for."""

    def set_autocommit(conn: Raw, on: bool) -> None:
        current = getattr(conn, "autocommit", None)
        if callable(current):
            current(on)
        elif hasattr(conn, "autocommit"):
            conn.autocommit = on
        elif on:
            raise ExecutorConfigError(
                "%s connections have no autocommit switch: use autocommit=False" % module.__name__)

    return Driver(
        name=module.__name__,
        set_autocommit=set_autocommit,
        in_transaction=_unknown_transaction,
        broken=_class_guess(module),
        ping=_select_one,
        reset=None,
        interrupt=None,
        server_id=_no_server_id,
    )


def driver_for(module: ModuleType) -> Driver:
    """The :class:`Driver` for ``module`` (see the module docstring)."""
    name = module.__name__
    if name == "sqlite3":
        return _sqlite(module)
    if name in ("MySQLdb", "pymysql"):
        return _mysql(module, name)
    if name in ("psycopg", "psycopg2"):
        return _postgres(module, name)
    return generic_driver(module)
