"""tornpool: MySQL and MariaDB for Tornado and asyncio, without blocking the loop.

Common statements are written straight to the socket and their replies parsed
by a C codec as they arrive; PyMySQL, unchanged, runs the rest through a
greenlet bridge over the same socket.  Connections and pools hand out
awaitables that also work with ``yield`` under ``@tornado.gen.coroutine``.

>>> conn = await tornpool.connect("mysql://root@127.0.0.1:3306/test")
>>> cur = await conn.execute("SELECT 1")
>>> cur.fetchone()
(1,)
>>> pool = await tornpool.Pool("mysql://root@127.0.0.1:3306/test", size=2, max_size=10).connect()
>>> (await pool.execute("SELECT 2")).fetchone()
(2,)
"""

import logging

from tornpool import errors
from tornpool.async_cursor import AsyncCursor
from tornpool.connection import Connection, connect
from tornpool.cursors import Cursor, DictCursor, SSCursor, SSDictCursor
from tornpool.dsn import parse_dsn
from tornpool.errors import (
    CommandTimeout,
    ConnectionBusy,
    ConnectionClosed,
    ConnectionLost,
    ConnectionReleased,
    ConnectTimeout,
    DatabaseError,
    DataError,
    DSNError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    MySQLError,
    NotSupportedError,
    OperationalError,
    ForeignConnection,
    GreenletRequired,
    NoSuitableServer,
    PoolClosed,
    PoolError,
    PoolTimeout,
    PoolTooManyWaiters,
    PoolUnavailable,
    ProgrammingError,
    WrongEventLoop,
)
from tornpool.hosts import connect_target
from tornpool.pool import Lease, Pool, PoolConnection, PoolEngine
from tornpool.replicas import ReplicaSet

__version__ = "0.1.0"

# Library logging goes through `logging` only: nothing reaches stderr unless
# the application configures a handler.
logging.getLogger("tornpool").addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "connect",
    "Connection",
    "Pool",
    "PoolConnection",
    "PoolEngine",
    "Lease",
    "AsyncCursor",
    "Cursor",
    "DictCursor",
    "SSCursor",
    "SSDictCursor",
    "parse_dsn",
    "errors",
    "MySQLError",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "DSNError",
    "ConnectionBusy",
    "ConnectionClosed",
    "ConnectionLost",
    "ConnectionReleased",
    "CommandTimeout",
    "ConnectTimeout",
    "WrongEventLoop",
    "GreenletRequired",
    "PoolError",
    "PoolTimeout",
    "PoolClosed",
    "PoolTooManyWaiters",
    "PoolUnavailable",
    "ForeignConnection",
    "NoSuitableServer",
    "connect_target",
    "ReplicaSet",
]
