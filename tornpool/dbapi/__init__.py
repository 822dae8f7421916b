"""DB-API drivers behind tornpool's API.

So far: the SQLite process proxy -- :class:`SQLiteProxy` (blocking,
thread-safe) and :class:`AsyncSQLiteProxy` (awaitables), SQLite in worker
processes so that reads use more than one core.  See ``docs/dbapi.md``.
"""

from .sqlite_proxy import (
    AsyncSQLiteProxy,
    DatabaseNotFound,
    ProxyClosed,
    ProxyConfigError,
    ProxyTimeout,
    Result,
    SQLiteDatabaseError,
    SQLiteDataError,
    SQLiteError,
    SQLiteIntegrityError,
    SQLiteInterfaceError,
    SQLiteInternalError,
    SQLiteNotSupportedError,
    SQLiteOperationalError,
    SQLiteProgrammingError,
    SQLiteProxy,
    Transaction,
    TransactionClosed,
    TransactionControlError,
    UnpicklableParameters,
    WorkerCrashed,
    WorkerInfo,
    WouldDeadlock,
)
from ._sqlite_async import AsyncTransaction

__all__ = [
    "SQLiteProxy",
    "AsyncSQLiteProxy",
    "Transaction",
    "AsyncTransaction",
    "Result",
    "WorkerInfo",
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
]
