"""DB-API drivers behind tornpool's API.  See ``docs/dbapi.md``.

* :class:`ExecutorPool` -- any DB-API 2 driver (sqlite3, mysqlclient,
  PyMySQL, psycopg, psycopg2...) behind awaitables, on tornpool's pool
  engine: every connection lives in a thread of its own;
* the SQLite process proxy -- :class:`SQLiteProxy` (blocking, thread-safe)
  and :class:`AsyncSQLiteProxy` (awaitables), SQLite in worker processes so
  that reads use more than one core.

Both return the same buffered :class:`Result`.
"""

from . import executor_pool, sqlite_proxy
from ._sqlite_async import AsyncTransaction
from .executor_pool import *  # noqa: F401,F403  (the names of executor_pool.__all__)
from .sqlite_proxy import *  # noqa: F401,F403  (the names of sqlite_proxy.__all__)

__all__ = list(sqlite_proxy.__all__) + ["AsyncTransaction"] + list(executor_pool.__all__)
