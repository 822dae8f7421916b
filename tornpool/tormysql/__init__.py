"""TorMySQL's API on tornpool: ``import tornpool.tormysql as tormysql``.

TorMySQL (Tornado + greenlet + PyMySQL) does not run on Tornado >= 6.1 nor on
PyMySQL >= 1.2.1.  This facade gives its code the same names on current
Tornado and PyMySQL, with tornpool's pool underneath::

    import tornpool.tormysql as tormysql          # was: import tormysql

    pool = tormysql.helpers.ConnectionPool(max_connections=20, idle_seconds=7200,
        wait_connection_timeout=3, host="127.0.0.1", user="root", passwd="", db="test")
    cursor = yield pool.execute("SELECT * FROM test")

The modules mirror TorMySQL's: :mod:`~tornpool.tormysql.client` (:class:`Client`),
:mod:`~tornpool.tormysql.pool` (:class:`ConnectionPool` and its errors),
:mod:`~tornpool.tormysql.cursor`, :mod:`~tornpool.tormysql.helpers`,
:mod:`~tornpool.tormysql.log`.  Differences, and the TorMySQL defects the
facade does not reproduce, are in ``docs/migrating-from-tormysql.md``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornpool.tormysql import helpers
from tornpool.tormysql.client import Client
from tornpool.tormysql.cursor import (
    Cursor,
    CursorNotIterError,
    CursorNotReadAllDataError,
    DictCursor,
    SSCursor,
    SSDictCursor,
)
from tornpool.tormysql.log import set_log
from tornpool.tormysql.pool import (
    ConnectionNotFoundError,
    ConnectionNotUsedError,
    ConnectionPool,
    ConnectionPoolClosedError,
    ConnectionPoolUsedError,
    ConnectionUsedError,
    WaitConnectionTimeoutError,
)

__all__ = [
    "Client",
    "Cursor",
    "DictCursor",
    "SSCursor",
    "SSDictCursor",
    "ConnectionPool",
    "CursorNotReadAllDataError",
    "CursorNotIterError",
    "ConnectionPoolClosedError",
    "ConnectionPoolUsedError",
    "ConnectionNotFoundError",
    "ConnectionNotUsedError",
    "ConnectionUsedError",
    "WaitConnectionTimeoutError",
    "set_log",
    "helpers",
    "version",
    "version_info",
    "connect",
    "Connection",
]

#: The TorMySQL version whose API this facade offers.
version = "0.4.3"
version_info = (0, 4, 3)


def connect(*args: Any, **kwargs: Any) -> asyncio.Future[Client]:
    """Open one connection (a :class:`Client`); PyMySQL's arguments.

    :returns: a Future resolving to the connected client.
    :raises OperationalError: unreachable server, refused login.
    """
    return Client(*args, **kwargs).connect()


Connection = connect
