"""Momoko's API on tornpool, for MySQL and MariaDB.

Momoko (Tornado + psycopg2) code runs with one changed import and a MySQL DSN::

    import tornpool.momoko as momoko          # was: import momoko

    db = momoko.Pool(dsn="dbname=shop user=app password=secret host=127.0.0.1",
                     size=1, max_size=10)
    yield db.connect()
    cursor = yield db.execute("SELECT id, name FROM item WHERE id = %s", (42,))
    cursor.fetchone()

The modules: :mod:`~tornpool.momoko.pool` (:class:`Pool`),
:mod:`~tornpool.momoko.connection` (:class:`Connection`, :func:`connect`),
:mod:`~tornpool.momoko.cursors` (the ``cursor_factory`` classes),
:mod:`~tornpool.momoko.exceptions`, :mod:`~tornpool.momoko.dsn` (libpq
``key=value`` strings and ``mysql://`` URLs).  The DB-API exceptions are
re-exported, so ``except psycopg2.OperationalError`` becomes ``except
momoko.OperationalError``.  Every difference from Momoko and psycopg2 is in
``docs/migrating-from-momoko.md``.
"""

from tornpool.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from tornpool.momoko import exceptions
from tornpool.momoko.connection import Connection, connect
from tornpool.momoko.cursors import (
    Cursor,
    DictConnection,
    DictCursor,
    DictRow,
    NamedTupleConnection,
    NamedTupleCursor,
    RealDictConnection,
    RealDictCursor,
    SSCursor,
    SSDictCursor,
)
from tornpool.momoko.dsn import DSNWarning
from tornpool.momoko.exceptions import DatabaseNotAvailable, PartiallyConnectedError, PoolError
from tornpool.momoko.pool import Pool

__all__ = [
    "Pool",
    "Connection",
    "connect",
    "PoolError",
    "PartiallyConnectedError",
    "DatabaseNotAvailable",
    "exceptions",
    "Cursor",
    "RealDictCursor",
    "DictCursor",
    "DictRow",
    "NamedTupleCursor",
    "SSCursor",
    "SSDictCursor",
    "RealDictConnection",
    "DictConnection",
    "NamedTupleConnection",
    "DSNWarning",
    "Warning",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
]
