"""``bench dbapi``: tornpool.dbapi.ExecutorPool over mysqlclient against a bare
``ThreadPoolExecutor`` over mysqlclient, with tornpool's own Pool and
asyncmy's pool in the same run.

    python -m bench dbapi [--runs 5] [--queries 10000] [--concurrency 100]
        [--size 10] [--scenarios select1,rows20] [--pools a,b] [--placement ...]

The workload is ``bench pool``'s (``bench/pool_workload.py``): ``--concurrency``
coroutines share ``--size`` connections and run request after request
(acquire -> execute -> fetch all -> release), each (pool, round) in a fresh
subprocess, the order rotating from round to round.  Contenders:

* ``dbapi-mysqlclient``: ``ExecutorPool(MySQLdb, size=10)``, ``await
  pool.execute(sql)`` -- one thread per connection, the engine's FIFO;
* ``mysqlclient-threads``: ``ThreadPoolExecutor(10)``, a mysqlclient
  connection per thread, ``await loop.run_in_executor(...)`` (the baseline);
* ``tornpool``: ``tornpool.Pool`` (its fast path, no threads);
* ``asyncmy``: ``asyncmy.create_pool``.

Targets (issue 14): ``dbapi-mysqlclient`` >= 0.9x the q/s of
``mysqlclient-threads`` with FIFO fairness (max latency <= 3x the median).
The first table is ``bench pool``'s (ratios to asyncmy); the second gives the
ratios to the baseline and says whether the targets hold.

``--overhead`` then measures the hand-off alone: the executor pool against
``run_in_executor`` over a DB-API module whose calls return at once, on one
CPU (``bench/dbapi_overhead.py``).

``--sqlite`` then compares, in this process, the executor pool over sqlite3
with the SQLite process proxy's awaitable face (``AsyncSQLiteProxy``, 2
readers) on one file: ``SELECT 1`` from one and from 8 coroutines, and
``bench sqlite``'s recursive CTE (~1 ms of CPU each) from 8 coroutines -- the
figures behind docs/dbapi.md's "when to use which" (printed, not saved).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bench import _stats, pool_adapters, pool_bench
from bench._server import Placed, peer_params
from bench._suite import Suite, choose, interleave, parser_for, run_child, run_suite
from bench.pool_adapters import PoolUnderTest

OURS = "dbapi-mysqlclient"
BASELINE = "mysqlclient-threads"
POOLS = (OURS, BASELINE, "tornpool", "asyncmy")
SCENARIOS = ("select1", "rows20", "sleep5ms")
QPS_TARGET = 0.9
FAIRNESS_TARGET = 3.0


async def open_dbapi_mysqlclient(dsn: str, size: int) -> PoolUnderTest:
    import MySQLdb

    from tornpool.dbapi import ExecutorPool

    pool = ExecutorPool(MySQLdb, kwargs=peer_params(dsn, "db", "passwd"), size=size, max_size=size)
    await pool.connect()

    async def request(sql: str) -> int:
        res = await pool.execute(sql)
        return len(res.fetchall())

    async def acquire_release() -> None:
        async with pool.acquire():
            pass

    return PoolUnderTest(request, acquire_release, pool.close)


def why_unavailable(pool: str) -> str | None:
    if pool != OURS:
        return pool_adapters.why_unavailable(pool)
    try:
        import MySQLdb  # noqa: F401

        import tornpool.dbapi  # noqa: F401
    except ImportError as exc:
        return f"not installed (import {exc.name} failed)"
    return None


def spawn(pool: str, dsn: str, config: dict[str, Any]) -> dict[str, Any] | str:
    """One (pool, round) in its own process: its figures, or why it failed."""
    return run_child([sys.executable, "-m", "bench.dbapi_bench", "--child", pool, dsn,
                      json.dumps(config)])


def child(argv: list[str]) -> None:
    """``--child POOL DSN CONFIG``: ``bench pool``'s workload, with the
    executor pool among the openers (in this process only)."""
    from bench import pool_workload

    pool_adapters.OPENERS[OURS] = open_dbapi_mysqlclient
    pool_workload.main(argv)


def measure(placed: Placed, doc: dict[str, Any], args: argparse.Namespace) -> None:
    pool_bench.prepare(placed.dsn)
    wanted = choose(args.pools, POOLS, POOLS, "pool(s)")
    scenarios = choose(args.scenarios, ("select1", "rows20"), SCENARIOS, "scenario(s)")
    if min(args.queries, args.sleep_queries) < args.concurrency:
        raise SystemExit("--queries and --sleep-queries must be at least --concurrency")
    config = {"scenarios": scenarios, "queries": args.queries, "sleep_queries": args.sleep_queries,
              "concurrency": args.concurrency, "size": args.size, "acquires": args.acquires}
    doc["scenarios"] = scenarios
    interleave(doc, f"dbapi {placed.placement}", args.runs, wanted,
               lambda pool: spawn(pool, placed.dsn, config), why_unavailable)


def verdict(doc: dict[str, Any]) -> str:
    """Ratios of every pool to the bare executor, and the targets."""
    rounds = _stats.rounds_of(doc)
    rows, lines = [], []
    for name in doc["scenarios"]:
        for pool in doc["clients"]:
            if pool in doc["unavailable"]:
                continue
            qps = _stats.median_ratio(rounds, pool, BASELINE, (name, "qps"))
            cpu = _stats.median_ratio(rounds, pool, BASELINE, (name, "cpu_us"))
            fair = _stats.median_over_rounds(rounds, pool, (name, "max_over_p50"))
            span = _stats.per_round_minmax(rounds, pool, (name, "max_over_p50"))
            rows.append([pool_bench.LABELS[name], pool, _stats.ratio(qps), _stats.ratio(cpu),
                         _stats.fmt(fair, ".1f"),
                         "-" if span is None else "%.1f-%.1f" % span])
            if pool == OURS and qps is not None and fair is not None:
                ok = qps >= QPS_TARGET and fair <= FAIRNESS_TARGET
                lines.append(f"- {pool_bench.LABELS[name]}: {OURS} {qps:.2f}x the q/s of {BASELINE} "
                             f"(target >= {QPS_TARGET}x), max/p50 {fair:.1f} (target <= "
                             f"{FAIRNESS_TARGET:g}): {'met' if ok else 'NOT met'}")
    header = ["scenario", "pool", f"q/s x {BASELINE}", f"CPU x {BASELINE}", "max/p50",
              "max/p50 range over rounds"]
    return "\n".join([f"Against the bare executor ({BASELINE}), medians of per-round ratios:", "",
                      _stats.table(header, rows, numeric_from=2), "", *lines])


def render(doc: dict[str, Any]) -> str:
    return pool_bench.render(doc) + "\n" + verdict(doc) + "\n"


SUITE = Suite("dbapi", measure, render)


async def _sqlite_round(path: str, calls: int) -> dict[str, tuple[float, float]]:
    """(wall us, this process's CPU us) per call of each (contender, workload)."""
    import sqlite3

    from bench.sqlite_bench import QUERIES, timed_async
    from tornpool.dbapi import AsyncSQLiteProxy, ExecutorPool

    cte, cte_params = QUERIES["cte"]
    out: dict[str, tuple[float, float]] = {}
    async with ExecutorPool(sqlite3, path, size=8) as pool, \
            AsyncSQLiteProxy(path, readers=2) as proxy:
        for name, face in (("executor pool", pool), ("process proxy", proxy)):
            await asyncio.gather(*[face.execute("SELECT 1") for _ in range(16)])  # warm
            out[f"{name}|SELECT 1, 1 coroutine"] = await timed_async(
                lambda: face.execute("SELECT 1"), calls, 1)
            out[f"{name}|SELECT 1, 8 coroutines"] = await timed_async(
                lambda: face.execute("SELECT 1"), calls, 8)
            out[f"{name}|CTE ~1 ms, 8 coroutines"] = await timed_async(
                lambda: face.execute(cte, cte_params), max(calls // 10, 80), 8)
    return out


def sqlite_comparison(rounds: int, calls: int) -> str:
    """Run :func:`_sqlite_round` ``rounds`` times; the medians as Markdown."""
    import os
    import statistics
    import tempfile

    from bench.sqlite_bench import load, make_db

    with tempfile.TemporaryDirectory(prefix="dbapi-bench-") as tmp:
        path = os.path.join(tmp, "bench.db")
        make_db(path)
        before = load()
        results = [asyncio.run(_sqlite_round(path, calls)) for _ in range(rounds)]
        after = load()
    rows = []
    for key in results[0]:
        name, workload = key.split("|")
        wall = statistics.median(r[key][0] for r in results)
        cpu = statistics.median(r[key][1] for r in results)
        rows.append([workload, name, _stats.fmt(wall, ".1f"), _stats.fmt(1e6 / wall, ",.0f"),
                     _stats.fmt(cpu, ".1f")])
    rows.sort(key=lambda r: r[0])
    head = (f"sqlite3 in this process: executor pool (8 connections) vs process proxy "
            f"(2 readers), {rounds} rounds, medians; {before} -> {after}; CPU is this "
            "process's only (the proxy's workers run elsewhere).")
    return "\n".join([head, "", _stats.table(["workload", "contender", "wall us/call", "calls/s",
                                                "CPU us/call"], rows, numeric_from=2)])


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        child(args[1:])
        return
    parser = parser_for("dbapi", __doc__, runs=5)
    parser.add_argument("--queries", type=int, default=10000,
                        help="requests per pool per round (default 10000)")
    parser.add_argument("--sleep-queries", type=int, default=2000,
                        help="requests per round of SELECT SLEEP(0.005), if asked for (default 2000)")
    parser.add_argument("--concurrency", type=int, default=100, help="coroutines (default 100)")
    parser.add_argument("--size", type=int, default=10, help="connections (default 10)")
    parser.add_argument("--acquires", type=int, default=5000,
                        help="acquire+release per batch, 5 batches (default 5000)")
    parser.add_argument("--pools", default="", help=f"comma-separated subset of {','.join(POOLS)}")
    parser.add_argument("--scenarios", default="select1,rows20",
                        help=f"comma-separated subset of {','.join(SCENARIOS)} (default select1,rows20)")
    parser.add_argument("--sqlite", action="store_true",
                        help="then compare the executor pool over sqlite3 with the process proxy")
    parser.add_argument("--sqlite-only", action="store_true", help="only that comparison")
    parser.add_argument("--overhead", action="store_true",
                        help="then the executor pool against run_in_executor over a DB-API module "
                             "whose calls return at once (bench/dbapi_overhead.py)")
    parser.add_argument("--overhead-only", action="store_true", help="only that comparison")
    parser.add_argument("--overhead-calls", type=int, default=30000,
                        help="calls per round of the overhead comparison (default 30000)")
    parser.add_argument("--sqlite-calls", type=int, default=4000,
                        help="SELECT 1 calls per round of the sqlite comparison (default 4000)")
    opts, _ = parser.parse_known_args(args)
    if not (opts.sqlite_only or opts.overhead_only):
        run_suite(SUITE, parser, args)
    if opts.sqlite or opts.sqlite_only:
        print(sqlite_comparison(opts.runs, opts.sqlite_calls))
    if opts.overhead or opts.overhead_only:
        from bench.dbapi_overhead import comparison

        print(comparison(opts.runs, opts.overhead_calls))


if __name__ == "__main__":
    main()
