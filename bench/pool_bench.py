"""Pool benchmark: tornpool's Pool vs aiomysql's pool vs TorMySQL's, side by side.

Workload: C coroutines share a pool capped at P connections (default 100 / 10);
each runs acquire -> query -> fetch -> release in a loop.  Two queries:
``SELECT 1`` and a 20-row, 6-column select.  Reported per library: queries per
second, median / p99 / max latency of one request (acquire included), client
CPU per query (process time / queries); the medians of ``--runs`` rounds,
each round running every pool once.  Then
the bare acquire+release overhead per pool (one coroutine, idle pool).

    .venv/bin/python bench/pool_bench.py [--dsn mysql://root@127.0.0.1:3306/test]
        [--queries 10000] [--runs 3] [--concurrency 100] [--pool 10] [--only tornpool,aiomysql]

Without ``--dsn`` (or ``$TORNPOOL_TEST_DSN``) a throwaway server is started.
Peers missing from the venv are skipped (``pip install aiomysql tormysql``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pymysql  # noqa: E402

from bench._server import bench_server, connect_params  # noqa: E402

QUERIES = {
    "select1": "SELECT 1",
    "rows20": "SELECT id, name, qty, price, created, note FROM pool_bench_rows ORDER BY id LIMIT 20",
}

Runner = Callable[[str], Awaitable[None]]


def setup_table(p: Dict[str, Any]) -> None:
    c = pymysql.connect(host=p["host"], port=p["port"], user=p["user"],
                        password=p.get("password", ""), database=p["database"], autocommit=True)
    cur = c.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS pool_bench_rows (id INT PRIMARY KEY, name VARCHAR(40), "
                "qty INT, price DECIMAL(10,2), created DATETIME, note VARCHAR(100))")
    cur.execute("SELECT COUNT(*) FROM pool_bench_rows")
    if cur.fetchone()[0] < 20:
        cur.execute("DELETE FROM pool_bench_rows")
        cur.executemany("INSERT INTO pool_bench_rows VALUES (%s,%s,%s,%s,NOW(),%s)",
                        [(i, "name-%d" % i, i * 3, "%d.25" % i, "note " * 10) for i in range(20)])
    c.close()


# -- per-library adapters: (setup -> (run_query, acquire_release, close)) -------------


async def make_tornpool(p: Dict[str, Any], size: int) -> Tuple[Runner, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    from tornpool.pool import Pool

    pool = Pool(size=size, max_size=size, **p)
    await pool.connect()

    async def run(sql: str) -> None:
        async with pool.acquire() as conn:
            cur = await conn.execute(sql)
            cur.fetchall()

    async def acq() -> None:
        async with pool.acquire():
            pass

    return run, acq, pool.close


async def make_aiomysql(p: Dict[str, Any], size: int) -> Tuple[Runner, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import aiomysql

    pool = await aiomysql.create_pool(host=p["host"], port=p["port"], user=p["user"],
                                      password=p.get("password", ""), db=p["database"],
                                      minsize=size, maxsize=size, autocommit=True)

    async def run(sql: str) -> None:
        async with pool.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                await cur.fetchall()

    async def acq() -> None:
        async with pool.acquire():
            pass

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return run, acq, close


async def make_tormysql(p: Dict[str, Any], size: int) -> Tuple[Runner, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    tormysql = import_tormysql()
    pool = tormysql.ConnectionPool(max_connections=size, idle_seconds=3600, wait_connection_timeout=60,
                                   host=p["host"], port=p["port"], user=p["user"],
                                   passwd=p.get("password", ""), db=p["database"], autocommit=True)
    # warm up to `size` connections
    conns = [await pool.Connection() for _ in range(size)]
    for c in conns:
        await c.close()  # tormysql: close() gives it back to the pool

    async def run(sql: str) -> None:
        async with await pool.Connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                cur.fetchall()

    async def acq() -> None:
        async with await pool.Connection():
            pass

    async def close() -> None:
        await pool.close()

    return run, acq, close


def import_tormysql() -> Any:
    """TorMySQL 0.4.3 (its last release) no longer imports as is: its asyncio
    platform needs ``asyncio.coroutine`` (removed in Python 3.11) and its
    tornado platform private Tornado names (gone in Tornado 6.x); with PyMySQL
    1.2 it also misses ``_current_timeout``.  Two shims make it run; they
    change nothing on its hot path."""
    import types

    if not hasattr(asyncio, "coroutine"):
        asyncio.coroutine = types.coroutine  # type: ignore[attr-defined]
    if not hasattr(pymysql.connections.Connection, "_current_timeout"):
        pymysql.connections.Connection._current_timeout = None
    import tormysql

    return tormysql


LIBS = {"tornpool": make_tornpool, "aiomysql": make_aiomysql, "tormysql": make_tormysql}


async def one_run(make: Any, p: Dict[str, Any], sql: str, n: int, conc: int, size: int) -> Dict[str, float]:
    run, _, close = await make(p, size)
    for _ in range(size * 2):
        await run(sql)
    lat: List[float] = []
    per = n // conc

    async def worker() -> None:
        pc = time.perf_counter
        for _ in range(per):
            t = pc()
            await run(sql)
            lat.append(pc() - t)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conc)])
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await close()
    lat.sort()
    return {"qps": len(lat) / wall, "median_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000, "max_ms": lat[-1] * 1000,
            "cpu_us": cpu / len(lat) * 1e6}


async def overhead(make: Any, p: Dict[str, Any], n: int = 20000) -> float:
    _, acq, close = await make(p, 2)
    for _ in range(1000):
        await acq()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            await acq()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    await close()
    return best


_LOOP: Optional[asyncio.AbstractEventLoop] = None


def run_loop(coro: Awaitable[Any]) -> Any:
    # One loop for the whole benchmark: TorMySQL caches the first loop it sees.
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        asyncio.set_event_loop(_LOOP)
    return _LOOP.run_until_complete(coro)


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--pool", type=int, default=10)
    ap.add_argument("--only", default="tornpool,aiomysql,tormysql")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="with a throwaway server, do not pin it and the pools to separate CPUs")
    args = ap.parse_args(argv)
    with bench_server(args.dsn, args.pin) as dsn:
        _main(args, dsn)


def _main(args: argparse.Namespace, dsn: str) -> None:
    p = connect_params(dsn)
    setup_table(p)
    libs = []
    for name in args.only.split(","):
        try:
            import_tormysql() if name == "tormysql" else __import__(name)
        except ImportError:
            print("# %s not installed: skipped" % name)
            continue
        libs.append(name)
    print("# %d coroutines, pool of %d, %d queries per run, median of %d runs, Python %s"
          % (args.concurrency, args.pool, args.queries, args.runs, sys.version.split()[0]))
    # Rounds interleave the pools, so that a drift of this shared machine
    # bills them alike; each figure is the median over the rounds.
    runs: Dict[Tuple[str, str], List[Dict[str, float]]] = {}
    for _ in range(args.runs):
        for qname, sql in QUERIES.items():
            for lib in libs:
                runs.setdefault((qname, lib), []).append(
                    run_loop(one_run(LIBS[lib], p, sql, args.queries, args.concurrency, args.pool)))
    results = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for key, rs in runs.items()}
    print()
    print("| query | pool | q/s | vs tornpool | median ms | p99 ms | max ms | max/median | CPU us/query |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (qname, lib), r in results.items():
        base = results.get((qname, "tornpool"), r)["qps"]
        print("| %s | %s | %.0f | %.2fx | %.2f | %.2f | %.2f | %.1f | %.0f |" % (
            qname, lib, r["qps"], r["qps"] / base, r["median_ms"], r["p99_ms"], r["max_ms"],
            r["max_ms"] / r["median_ms"], r["cpu_us"]))
    print()
    print("| pool | acquire+release us (best of 5 x 20000) |")
    print("|---|---:|")
    for lib in libs:
        print("| %s | %.2f |" % (lib, run_loop(overhead(LIBS[lib], p))))


if __name__ == "__main__":
    main()
