"""The errors of the SQLite process proxy.

Every class here derives from two parents: the DB-API class of
:mod:`tornpool.errors` (so ``except tornpool.errors.OperationalError`` works
the same for the MySQL pool and for the proxy) and the matching class of
:mod:`sqlite3` (so code ported from :mod:`sqlite3` keeps its
``except sqlite3.IntegrityError``).

* **SQL errors** raised by SQLite in a worker come back as the ``SQLite*``
  twin of sqlite3's own class, with the same message and the same
  ``sqlite_errorcode`` / ``sqlite_errorname`` attributes;
* **misuse** -> :class:`ProxyClosed`, :class:`TransactionClosed`,
  :class:`TransactionControlError`, :class:`WouldDeadlock`,
  :class:`UnpicklableParameters`, :class:`ProxyConfigError`;
* **lost worker** -> :class:`WorkerCrashed`; **no worker free in time** ->
  :class:`ProxyTimeout`; **no database** -> :class:`DatabaseNotFound`.
"""

from __future__ import annotations

import sqlite3
from typing import Optional, Tuple

from tornpool import errors

__all__ = [
    "SQLiteError",
    "SQLiteInterfaceError",
    "SQLiteDatabaseError",
    "SQLiteDataError",
    "SQLiteOperationalError",
    "SQLiteIntegrityError",
    "SQLiteInternalError",
    "SQLiteProgrammingError",
    "SQLiteNotSupportedError",
    "ProxyClosed",
    "TransactionClosed",
    "TransactionControlError",
    "WouldDeadlock",
    "UnpicklableParameters",
    "ProxyConfigError",
    "WorkerCrashed",
    "ProxyTimeout",
    "DatabaseNotFound",
    "ErrorPayload",
    "error_from_payload",
]

#: What a worker sends back for a failed request: (kind, message, sqlite
#: error code or None, sqlite error name or None).  ``kind`` is the name of a
#: sqlite3 exception class, or one of the names in :data:`_SPECIAL`.
ErrorPayload = Tuple[str, str, Optional[int], Optional[str]]


# --- SQL errors: sqlite3's classes, twinned with tornpool's -------------------------


class SQLiteError(errors.Error, sqlite3.Error):  # type: ignore[misc]
    """An error SQLite reported (base class of the ``SQLite*`` errors)."""


class SQLiteInterfaceError(errors.InterfaceError, sqlite3.InterfaceError):  # type: ignore[misc]
    """sqlite3's InterfaceError, raised in a worker."""


class SQLiteDatabaseError(errors.DatabaseError, sqlite3.DatabaseError):  # type: ignore[misc]
    """sqlite3's DatabaseError (e.g. "file is not a database"), raised in a worker."""


class SQLiteDataError(errors.DataError, sqlite3.DataError):  # type: ignore[misc]
    """sqlite3's DataError -- or a value SQLite cannot store (an integer
    beyond 64 bits, a string with lone surrogates), raised in a worker."""


class SQLiteOperationalError(errors.OperationalError, sqlite3.OperationalError):  # type: ignore[misc]
    """sqlite3's OperationalError (syntax errors, "no such table", "database
    is locked", ...), raised in a worker."""


class SQLiteIntegrityError(errors.IntegrityError, sqlite3.IntegrityError):  # type: ignore[misc]
    """sqlite3's IntegrityError (constraint violations), raised in a worker."""


class SQLiteInternalError(errors.InternalError, sqlite3.InternalError):  # type: ignore[misc]
    """sqlite3's InternalError -- or an unexpected Python error in a worker."""


class SQLiteProgrammingError(errors.ProgrammingError, sqlite3.ProgrammingError):  # type: ignore[misc]
    """sqlite3's ProgrammingError (wrong number of parameters, an unsupported
    parameter type, several statements in one ``execute``), raised in a worker."""


class SQLiteNotSupportedError(errors.NotSupportedError, sqlite3.NotSupportedError):  # type: ignore[misc]
    """sqlite3's NotSupportedError, raised in a worker."""


# --- misuse ---------------------------------------------------------------------------


class ProxyClosed(errors.InterfaceError, sqlite3.InterfaceError):  # type: ignore[misc]
    """The proxy was closed (or is closing); it runs nothing any more."""


class TransactionClosed(errors.InterfaceError, sqlite3.InterfaceError):  # type: ignore[misc]
    """A transaction handle was used after its block ended."""


class TransactionControlError(errors.ProgrammingError, sqlite3.ProgrammingError):  # type: ignore[misc]
    """BEGIN / COMMIT / ROLLBACK (or a SAVEPOINT outside a transaction) was
    sent as a statement: transactions belong to ``proxy.transaction()``,
    since the writer is shared by every caller."""


class WouldDeadlock(errors.InterfaceError, sqlite3.InterfaceError):  # type: ignore[misc]
    """The call would wait for a worker that only the caller itself can free:
    a write through the proxy inside the caller's own ``transaction()`` block
    (use the transaction handle), a nested ``transaction()``, or a blocking
    call on an event loop thread whose own awaiting calls hold every worker."""


class UnpicklableParameters(errors.InterfaceError, sqlite3.InterfaceError, TypeError):  # type: ignore[misc]
    """The parameters cannot be sent to a worker process (they do not
    pickle, or do not unpickle there).  Nothing was run."""


class ProxyConfigError(errors.InterfaceError, sqlite3.InterfaceError, ValueError):  # type: ignore[misc]
    """A constructor argument is invalid (``:memory:``, ``readers < 0``, an
    unknown start method or synchronous level ...)."""


# --- the environment ------------------------------------------------------------------


class WorkerCrashed(errors.OperationalError, sqlite3.OperationalError):  # type: ignore[misc]
    """The worker process running the call died (killed, out of memory, a
    crash in an extension).  It has been restarted.  A write that was in
    flight is either committed entirely or not at all (SQLite's atomic
    commit); an open transaction is rolled back."""


class ProxyTimeout(errors.OperationalError, sqlite3.OperationalError, TimeoutError):  # type: ignore[misc]
    """No worker became free within the call's ``timeout``.  Nothing was run."""


class DatabaseNotFound(errors.OperationalError, sqlite3.OperationalError, FileNotFoundError):  # type: ignore[misc]
    """The database's directory does not exist, or the file does not exist
    and ``create=False``."""


_SQLITE_CLASSES: dict[str, type[Exception]] = {
    "Error": SQLiteError,
    "Warning": SQLiteError,
    "InterfaceError": SQLiteInterfaceError,
    "DatabaseError": SQLiteDatabaseError,
    "DataError": SQLiteDataError,
    "OperationalError": SQLiteOperationalError,
    "IntegrityError": SQLiteIntegrityError,
    "InternalError": SQLiteInternalError,
    "ProgrammingError": SQLiteProgrammingError,
    "NotSupportedError": SQLiteNotSupportedError,
    # Python errors sqlite3 raises for values it cannot bind
    "OverflowError": SQLiteDataError,
    "UnicodeEncodeError": SQLiteDataError,
    "ValueError": SQLiteDataError,
}

#: kinds that the worker reports for conditions of the proxy itself
_SPECIAL: dict[str, type[Exception]] = {
    "Unpicklable": UnpicklableParameters,
    "TransactionControl": TransactionControlError,
    "TransactionLost": SQLiteOperationalError,
    "Closed": ProxyClosed,
}


def error_from_payload(payload: ErrorPayload) -> Exception:
    """Build the exception a worker described.

    :param payload: ``(kind, message, errorcode, errorname)`` as sent by
        :mod:`tornpool.dbapi._sqlite_session` (in a worker process or in the
        in-process writer).
    :returns: an instance of one of the classes above, carrying
        ``sqlite_errorcode`` and ``sqlite_errorname`` (None when SQLite did not
        report one).
    """
    kind, message, code, name = payload
    cls = _SPECIAL.get(kind) or _SQLITE_CLASSES.get(kind)
    if cls is None:
        cls, message = SQLiteInternalError, "%s: %s" % (kind, message)
    elif kind in ("OverflowError", "UnicodeEncodeError", "ValueError"):
        message = "%s: %s" % (kind, message)
    exc = cls(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    return exc
