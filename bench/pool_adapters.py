"""The pools ``bench pool`` compares, each behind the same three calls.

Each ``open_*`` returns a :class:`PoolUnderTest` whose ``request(sql)`` is
what one caller of that library writes for a one-off query (acquire, execute,
fetch all rows, release; returns the number of rows), ``acquire_release()``
takes a connection and gives it back unused, and ``close()`` shuts the pool.
Every pool holds exactly ``size`` connections, all opened before measuring,
with autocommit on (tornpool's default; aiomysql and asyncmy would otherwise
discard a connection released inside the implicit transaction of a SELECT).

* ``tornpool``: ``tornpool.Pool(dsn, size, max_size)``, ``await pool.execute(sql)``
  (the one-call API; ``tornpool-acquire`` does ``async with pool.acquire()``
  and ``conn.execute`` instead);
* ``asyncmy``, ``aiomysql``: ``create_pool(minsize=size, maxsize=size)``,
  ``async with pool.acquire() as conn``, ``async with conn.cursor() as cur``;
* ``tormysql``: ``ConnectionPool(max_connections=size)``,
  ``async with await pool.Connection() as conn`` (after two shims, see
  :func:`import_tormysql`);
* ``mysqlclient-threads``: a ``ThreadPoolExecutor(size)`` whose every thread
  holds one mysqlclient connection; a request is
  ``await loop.run_in_executor(executor, query, sql)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench._server import peer_params

POOLS = ("tornpool", "asyncmy", "aiomysql", "tormysql", "mysqlclient-threads")
EXTRA_POOLS = ("tornpool-acquire",)


@dataclass
class PoolUnderTest:
    request: Callable[[str], Awaitable[int]]
    acquire_release: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]


async def open_tornpool(dsn: str, size: int, one_call: bool = True) -> PoolUnderTest:
    import tornpool

    pool = tornpool.Pool(dsn, size=size, max_size=size)
    await pool.connect()

    async def execute(sql: str) -> int:
        cur = await pool.execute(sql)
        return len(cur.fetchall())

    async def acquired(sql: str) -> int:
        async with pool.acquire() as conn:
            cur = await conn.execute(sql)
            return len(cur.fetchall())

    async def acquire_release() -> None:
        async with pool.acquire():
            pass

    return PoolUnderTest(execute if one_call else acquired, acquire_release, pool.close)


async def open_tornpool_acquire(dsn: str, size: int) -> PoolUnderTest:
    return await open_tornpool(dsn, size, one_call=False)


async def _open_aio_style(module: Any, dsn: str, size: int) -> PoolUnderTest:
    """asyncmy and aiomysql share aiopg's pool API."""
    pool = await module.create_pool(minsize=size, maxsize=size, **peer_params(dsn, autocommit=True))

    async def request(sql: str) -> int:
        async with pool.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                return len(await cur.fetchall())

    async def acquire_release() -> None:
        async with pool.acquire():
            pass

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return PoolUnderTest(request, acquire_release, close)


async def open_asyncmy(dsn: str, size: int) -> PoolUnderTest:
    import asyncmy

    return await _open_aio_style(asyncmy, dsn, size)


async def open_aiomysql(dsn: str, size: int) -> PoolUnderTest:
    import aiomysql

    return await _open_aio_style(aiomysql, dsn, size)


def import_tormysql() -> Any:
    """TorMySQL 0.4.3 (its last release) no longer imports as is: its asyncio
    platform needs ``asyncio.coroutine`` (removed in Python 3.11), and with
    PyMySQL 1.2 its connection misses ``_current_timeout``.  Two shims make it
    run; neither is on its hot path.

    :raises ImportError: TorMySQL is not installed or still does not import.
    """
    import types

    import pymysql

    if not hasattr(asyncio, "coroutine"):
        setattr(asyncio, "coroutine", types.coroutine)
    if not hasattr(pymysql.connections.Connection, "_current_timeout"):
        pymysql.connections.Connection._current_timeout = None
    import tormysql

    return tormysql


async def open_tormysql(dsn: str, size: int) -> PoolUnderTest:
    tormysql = import_tormysql()
    pool = tormysql.ConnectionPool(max_connections=size, idle_seconds=3600, wait_connection_timeout=60,
                                   **peer_params(dsn, "db", "passwd", autocommit=True))
    opened = [await pool.Connection() for _ in range(size)]
    for conn in opened:
        await conn.close()  # TorMySQL: close() gives a pooled connection back

    async def request(sql: str) -> int:
        async with await pool.Connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                return len(cur.fetchall())

    async def acquire_release() -> None:
        async with await pool.Connection():
            pass

    async def close() -> None:
        await pool.close()

    return PoolUnderTest(request, acquire_release, close)


def _nothing() -> None:
    return None


async def open_mysqlclient_threads(dsn: str, size: int) -> PoolUnderTest:
    import MySQLdb

    local = threading.local()
    opened: list[Any] = []
    lock = threading.Lock()
    params = peer_params(dsn, "db", "passwd", autocommit=True)

    def connect() -> None:
        local.conn = MySQLdb.connect(**params)
        with lock:
            opened.append(local.conn)

    executor = ThreadPoolExecutor(size, thread_name_prefix="mysqlclient", initializer=connect)
    loop = asyncio.get_running_loop()
    # `size` tasks that wait for each other: the executor starts all its
    # threads (and so opens all connections) before anything is measured
    barrier = threading.Barrier(size, timeout=30)
    await asyncio.gather(*[loop.run_in_executor(executor, barrier.wait) for _ in range(size)])
    if len(opened) != size:
        raise RuntimeError(f"mysqlclient-threads opened {len(opened)} connections, not {size}")

    def query(sql: str) -> int:
        cur = local.conn.cursor()
        try:
            cur.execute(sql)
            return len(cur.fetchall())
        finally:
            cur.close()

    async def request(sql: str) -> int:
        return await loop.run_in_executor(executor, query, sql)

    async def acquire_release() -> None:
        await loop.run_in_executor(executor, _nothing)

    async def close() -> None:
        await loop.run_in_executor(None, executor.shutdown, True)
        for conn in opened:
            conn.close()

    return PoolUnderTest(request, acquire_release, close)


OPENERS: dict[str, Callable[[str, int], Awaitable[PoolUnderTest]]] = {
    "tornpool": open_tornpool,
    "tornpool-acquire": open_tornpool_acquire,
    "asyncmy": open_asyncmy,
    "aiomysql": open_aiomysql,
    "tormysql": open_tormysql,
    "mysqlclient-threads": open_mysqlclient_threads,
}

_MODULES = {"tornpool": "tornpool", "tornpool-acquire": "tornpool", "asyncmy": "asyncmy",
            "aiomysql": "aiomysql", "mysqlclient-threads": "MySQLdb"}


def why_unavailable(pool: str) -> str | None:
    """Why ``pool`` cannot run in this environment, or ``None`` when it can."""
    try:
        if pool == "tormysql":
            import_tormysql()
        else:
            __import__(_MODULES[pool])
    except ImportError as exc:
        return f"not installed (import {exc.name or pool} failed)"
    except Exception as exc:  # noqa: BLE001 - a peer that breaks on import: say how
        return f"does not import here: {type(exc).__name__}: {exc}"
    return None
