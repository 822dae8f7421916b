"""``bench pool``: pools under many coroutines, side by side in one run.

    python -m bench pool [--runs 5] [--queries 10000] [--sleep-queries 2000]
        [--concurrency 100] [--size 10] [--placement pinned|unpinned|both]
        [--pools a,b] [--acquires 5000] [--dsn DSN]

``--concurrency`` coroutines share a pool of ``--size`` connections (default
100 / 10); each runs request after request, a request being acquire ->
execute -> fetch all -> release.  Scenarios: ``SELECT 1``, a 20-row x
6-column select, ``SELECT SLEEP(0.005)`` (where the server, not the client,
sets the pace, so client CPU per query is the figure to read).  Pools:
tornpool, asyncmy's, aiomysql's, TorMySQL's, and a ``ThreadPoolExecutor``
over mysqlclient (``bench/pool_adapters.py``; ``tornpool-acquire`` is
available with ``--pools``).  A round runs every pool once, each in a fresh
subprocess (``bench/pool_workload.py``), in an order that rotates from round
to round.

Per pool: q/s, p50/p99/max latency of a request (acquire included), max/p50,
client CPU per query, and the per-round ratios against asyncmy's pool
(median of the ratios); then the bare acquire+release cost (one coroutine,
idle pool).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bench import _stats
from bench._server import Placed
from bench._suite import Suite, choose, interleave, parser_for, run_child, run_suite
from bench.pool_adapters import EXTRA_POOLS, POOLS, why_unavailable
from bench.pool_workload import SCENARIOS

LABELS = {"select1": "SELECT 1", "rows20": "20 rows", "sleep5ms": "SLEEP(0.005)"}
BASE = "asyncmy"


def prepare(dsn: str) -> None:
    """Create and fill the 20-row table once per server."""
    import pymysql

    from bench._server import connect_params

    conn = pymysql.connect(autocommit=True, **connect_params(dsn))
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS pool_bench_rows (id INT PRIMARY KEY, name VARCHAR(40), "
                        "qty INT, price DECIMAL(10,2), created DATETIME, note VARCHAR(100))")
            cur.execute("SELECT COUNT(*) FROM pool_bench_rows")
            if cur.fetchone()[0] != 20:
                cur.execute("DELETE FROM pool_bench_rows")
                cur.executemany("INSERT INTO pool_bench_rows VALUES (%s,%s,%s,%s,NOW(),%s)",
                                [(i, f"name-{i}", i * 3, f"{i}.25", "note " * 10) for i in range(20)])
    finally:
        conn.close()


def spawn(pool: str, dsn: str, config: dict[str, Any]) -> dict[str, Any] | str:
    """One (pool, round) in its own process: its figures, or why it failed."""
    return run_child([sys.executable, "-m", "bench.pool_workload", pool, dsn, json.dumps(config)])


def measure(placed: Placed, doc: dict[str, Any], args: argparse.Namespace) -> None:
    prepare(placed.dsn)
    wanted = choose(args.pools, POOLS, POOLS + EXTRA_POOLS, "pool(s)")
    scenarios = choose(args.scenarios, list(SCENARIOS), list(SCENARIOS), "scenario(s)")
    if min(args.queries, args.sleep_queries) < args.concurrency:
        raise SystemExit("--queries and --sleep-queries must be at least --concurrency")
    config = {"scenarios": scenarios, "queries": args.queries, "sleep_queries": args.sleep_queries,
              "concurrency": args.concurrency, "size": args.size, "acquires": args.acquires}
    doc["scenarios"] = scenarios
    interleave(doc, f"pool {placed.placement}", args.runs, wanted,
               lambda pool: spawn(pool, placed.dsn, config), why_unavailable)


def render(doc: dict[str, Any]) -> str:
    """The Markdown tables of one ``bench pool`` results document."""
    rounds = _stats.rounds_of(doc)
    o = doc["options"]
    head = (f"`bench pool`, placement **{doc['placement']}**: {o['concurrency']} coroutines on "
            f"{o['size']} connections, {len(rounds)} rounds of {o['queries']} requests per scenario "
            f"({o['sleep_queries']} for SLEEP); figures are medians over the rounds, `x {BASE}` "
            "the median of per-round ratios to asyncmy's pool.")
    rows = []
    for name in doc["scenarios"]:
        for pool in doc["clients"]:
            if pool in doc["unavailable"]:
                rows.append([LABELS[name], pool, doc["unavailable"][pool]])
                continue

            def med(key: str) -> float | None:
                return _stats.median_over_rounds(rounds, pool, (name, key))

            def rat(key: str) -> str:
                return _stats.ratio(_stats.median_ratio(rounds, pool, BASE, (name, key)))

            if med("qps") is None:
                rows.append([LABELS[name], pool, "no figures (see the failures below)"])
                continue
            rows.append([LABELS[name], pool, _stats.fmt(med("qps"), ",.0f"), rat("qps"),
                         _stats.fmt(med("p50_ms")), _stats.fmt(med("p99_ms")), _stats.fmt(med("max_ms")),
                         _stats.fmt(med("max_over_p50"), ".1f"), _stats.fmt(med("cpu_us"), ".1f"),
                         rat("cpu_us")])
    header = ["scenario", "pool", "q/s", f"q/s x {BASE}", "p50 ms", "p99 ms", "max ms", "max/p50",
              "CPU us/q", f"CPU x {BASE}"]
    pauses = []
    for name in doc["scenarios"]:
        for pool in doc["clients"]:
            if pool in doc["unavailable"] or _stats.median_over_rounds(rounds, pool, (name, "pause_ms")) is None:
                continue

            def med_p(key: str, spec: str = ".2f") -> str:
                return _stats.fmt(_stats.median_over_rounds(rounds, pool, (name, key)), spec)

            pauses.append([LABELS[name], pool, med_p("max_ms"), med_p("pause_ms"), med_p("gc_runs", ".0f"),
                           med_p("gc_full", ".0f"), med_p("gc_max_ms")])
    acq = []
    for pool in doc["clients"]:
        if pool in doc["unavailable"]:
            continue
        acq.append([pool, _stats.fmt(_stats.median_over_rounds(rounds, pool, ("acquire", "cpu_us"))),
                    _stats.ratio(_stats.median_ratio(rounds, pool, BASE, ("acquire", "cpu_us"))),
                    _stats.fmt(_stats.median_over_rounds(rounds, pool, ("acquire", "wall_us")))])
    parts = [head, "", _stats.table(header, rows, numeric_from=2), ""]
    if pauses:
        parts += ["What the slowest request may have waited behind (medians over the rounds): the "
                  "longest time in which no request of the pool completed, and this process's "
                  "garbage collections during the scenario (a full one stops every coroutine):", "",
                  _stats.table(["scenario", "pool", "max ms", "longest pause ms", "GC runs", "full GCs",
                                "longest GC ms"], pauses, numeric_from=2), ""]
    parts += [f"Bare acquire+release, one coroutine on an idle pool ({o['acquires']} per batch, "
              "median of the batches; mysqlclient-threads: a no-op through the executor):", "",
              _stats.table(["pool", "CPU us", f"x {BASE}", "wall us"], acq), "", _stats.machine_line(doc)]
    for f in doc.get("failures", []):
        parts.append(f"- round {f['round']}, {f['client']}"
                     + (f" {f['scenario']}" if "scenario" in f else "") + f": {f['error']}")
    return "\n".join(parts) + "\n"


SUITE = Suite("pool", measure, render)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for("pool", __doc__, runs=5)
    parser.add_argument("--queries", type=int, default=10000,
                        help="requests per pool per round, SELECT 1 and 20 rows (default 10000)")
    parser.add_argument("--sleep-queries", type=int, default=2000,
                        help="requests per pool per round of SELECT SLEEP(0.005) (default 2000)")
    parser.add_argument("--concurrency", type=int, default=100, help="coroutines (default 100)")
    parser.add_argument("--size", "--pool", type=int, default=10, help="connections (default 10)")
    parser.add_argument("--acquires", type=int, default=5000,
                        help="acquire+release per batch, 5 batches (default 5000)")
    parser.add_argument("--pools", "--only", default="",
                        help=f"comma-separated subset of {','.join(POOLS + EXTRA_POOLS)} "
                             f"(default {','.join(POOLS)})")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    run_suite(SUITE, parser, argv)


if __name__ == "__main__":
    main()
