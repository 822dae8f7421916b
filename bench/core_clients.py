"""One client's ``bench core`` round, in this process.

``bench core`` spawns ``python -m bench.core_clients CLIENT DSN QUERIES
FETCHES TABLE`` once per (client, round), so that one client's imports,
caches and garbage never bill another.  The child runs both scenarios on one
connection and prints one JSON line:

* ``select1``: ``QUERIES`` sequential ``SELECT 1`` after 100 unmeasured;
* ``fetch``: ``FETCHES`` times ``SELECT * FROM TABLE``, after one unmeasured.

Client CPU is ``time.process_time()`` of this process around the measured
loop (the server is another process); ``user_us``/``sys_us`` split it as
``getrusage`` does.  Every client reuses one cursor where it has one and
fetches all rows, as a caller of each driver's documented API would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bench._meter import Meter
from bench._server import peer_params

BLOCKING = ("pymysql", "mysqlclient")
CLIENTS = ("tornpool", "tornpool-pure", "pymysql", "mysqlclient", "aiomysql", "asyncmy")
MODULES = {"tornpool": "tornpool", "tornpool-pure": "tornpool", "pymysql": "pymysql",
           "mysqlclient": "MySQLdb", "aiomysql": "aiomysql", "asyncmy": "asyncmy"}


def _scenarios(run: Callable[[str], int], queries: int, fetches: int, table: str) -> dict[str, Any]:
    """Both scenarios over a blocking ``run(sql) -> rows fetched``."""
    meter = Meter()
    for _ in range(100):
        run("SELECT 1")
    meter.start()
    for _ in range(queries):
        run("SELECT 1")
    out = {"select1": meter.stop(queries)}
    sql = f"SELECT * FROM {table}"
    run(sql)
    rows = 0
    meter.start()
    for _ in range(fetches):
        rows += run(sql)
    out["fetch"] = meter.stop(rows)
    out["fetch"]["rows_per_s"] = 1e6 / out["fetch"]["wall_us"]
    return out


async def _ascenarios(run: Callable[[str], Awaitable[int]], queries: int, fetches: int,
                      table: str) -> dict[str, Any]:
    """Both scenarios over an async ``run(sql) -> rows fetched`` (the same
    steps as :func:`_scenarios`, with ``await``)."""
    meter = Meter()
    for _ in range(100):
        await run("SELECT 1")
    meter.start()
    for _ in range(queries):
        await run("SELECT 1")
    out = {"select1": meter.stop(queries)}
    sql = f"SELECT * FROM {table}"
    await run(sql)
    rows = 0
    meter.start()
    for _ in range(fetches):
        rows += await run(sql)
    out["fetch"] = meter.stop(rows)
    out["fetch"]["rows_per_s"] = 1e6 / out["fetch"]["wall_us"]
    return out


def run_blocking(client: str, dsn: str, queries: int, fetches: int, table: str) -> dict[str, Any]:
    if client == "pymysql":
        import pymysql

        conn = pymysql.connect(**peer_params(dsn, "database", "password"))
    else:
        import MySQLdb

        conn = MySQLdb.connect(**peer_params(dsn, "db", "passwd"))
    cur = conn.cursor()

    def run(sql: str) -> int:
        cur.execute(sql)
        return len(cur.fetchall())

    try:
        if run("SELECT 1") != 1:
            raise SystemExit("SELECT 1 did not return one row")
        return _scenarios(run, queries, fetches, table)
    finally:
        conn.close()


async def run_async(client: str, dsn: str, queries: int, fetches: int, table: str) -> dict[str, Any]:
    close: Callable[[], Any]
    if client.startswith("tornpool"):
        import tornpool

        tconn = await tornpool.connect(dsn)

        async def run(sql: str) -> int:
            return len((await tconn.execute(sql)).fetchall())

        close = tconn.close
    elif client == "aiomysql":
        import aiomysql

        aconn = await aiomysql.connect(**peer_params(dsn, "db", "password"))
        acur = await aconn.cursor()

        async def run(sql: str) -> int:
            await acur.execute(sql)
            return len(await acur.fetchall())

        close = aconn.close
    elif client == "asyncmy":
        import asyncmy

        mconn = await asyncmy.connect(**peer_params(dsn, "db", "password"))
        mcur = mconn.cursor()

        async def run(sql: str) -> int:
            await mcur.execute(sql)
            return len(await mcur.fetchall())

        close = mconn.close
    else:
        raise SystemExit(f"unknown client {client!r}; known: {', '.join(CLIENTS)}")
    try:
        if await run("SELECT 1") != 1:
            raise SystemExit("SELECT 1 did not return one row")
        return await _ascenarios(run, queries, fetches, table)
    finally:
        done = close()
        if asyncio.iscoroutine(done):
            await done


def measure(client: str, dsn: str, queries: int, fetches: int, table: str) -> dict[str, Any]:
    """Both scenarios for ``client``; figures per query / per row."""
    if client in BLOCKING:
        out = run_blocking(client, dsn, queries, fetches, table)
    else:
        out = asyncio.run(run_async(client, dsn, queries, fetches, table))
    if client.startswith("tornpool"):
        import tornpool.codec

        out["codec"] = tornpool.codec.IMPL
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 5:
        raise SystemExit("usage: python -m bench.core_clients CLIENT DSN QUERIES FETCHES TABLE")
    client, dsn, queries, fetches, table = args
    print(json.dumps(measure(client, dsn, int(queries), int(fetches), table)))


if __name__ == "__main__":
    main()
