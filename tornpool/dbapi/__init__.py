"""DB-API drivers behind tornpool's API.

So far: the SQLite process proxy -- :class:`SQLiteProxy` (blocking,
thread-safe) and :class:`AsyncSQLiteProxy` (awaitables), SQLite in worker
processes so that reads use more than one core.  See ``docs/dbapi.md``.
"""

from . import sqlite_proxy
from ._sqlite_async import AsyncTransaction
from .sqlite_proxy import *  # noqa: F401,F403  (the names of sqlite_proxy.__all__)

__all__ = list(sqlite_proxy.__all__) + ["AsyncTransaction"]
