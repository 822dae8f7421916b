"""Side-by-side client benchmark: tornpool vs the peers, in one run.

    python -m bench core [--runs 5] [--queries 5000] [--fetches 5] [--dsn DSN] [--clients a,b]

Scenarios, each measured in a fresh subprocess per (client, run) so that one
client's imports, caches and garbage never bill another:

* ``select1`` -- N sequential ``SELECT 1`` on one connection;
* ``fetch10k`` -- ``SELECT *`` of a 10,000-row x 10 mixed-column table (INT,
  BIGINT, VARCHAR utf8mb4, DECIMAL, DOUBLE, DATETIME(6), DATE, TIME, TEXT with
  NULLs, JSON), repeated.

Client CPU is ``time.process_time()`` of the client process around the
measured loop (the server is another process), so a busy neighbour inflates
wall time but hardly CPU.  Rounds interleave the clients; the table shows the
median of the rounds and ratios against blocking PyMySQL *from the same run*.

Without ``--dsn`` a throwaway mariadbd is started on one CPU and the clients run
on another (``--no-pin`` to let the scheduler place them).

Clients: tornpool (C codec), tornpool-pure (TORNPOOL_CODEC=python), pymysql,
mysqlclient, aiomysql, asyncmy.  Peers that are not installed are reported as
such (``bash scripts/dev.sh bench`` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

from bench._server import bench_server, connect_params

ROWS = 10_000
TABLE = "bench_rows"
CLIENTS = ["tornpool", "tornpool-pure", "pymysql", "mysqlclient", "aiomysql", "asyncmy"]

SCHEMA = f"""CREATE TABLE {TABLE} (
    id INT PRIMARY KEY, big BIGINT, name VARCHAR(64) CHARACTER SET utf8mb4, price DECIMAL(10,2),
    ratio DOUBLE, created DATETIME(6), day DATE, span TIME, note TEXT NULL, doc JSON
) ENGINE=InnoDB"""

FILL = f"""INSERT INTO {TABLE}
SELECT seq, seq * 1000003, CONCAT('name-', seq, '-é'), seq / 7, seq / 3.0,
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL seq SECOND + INTERVAL (seq % 999983) MICROSECOND,
       DATE('2020-01-01') + INTERVAL (seq % 2000) DAY, SEC_TO_TIME(seq % 86400),
       IF(seq % 3 = 0, NULL, REPEAT('n', seq % 40)), JSON_OBJECT('k', seq, 'v', 'x')
FROM seq_1_to_{ROWS}"""


def prepare(dsn: str) -> None:
    import pymysql

    conn = pymysql.connect(autocommit=True, **connect_params(dsn))
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '{TABLE}' AND table_schema = DATABASE()")
        exists = cur.fetchone()[0]
        if exists:
            cur.execute(f"SELECT COUNT(*) FROM {TABLE}")
            exists = cur.fetchone()[0] == ROWS
        if not exists:
            cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
            cur.execute(SCHEMA)
            cur.execute(FILL)
    conn.close()


# -- one client, one scenario, in this process ------------------------------------


def _measure(loop_body: Callable[[], None], units: int) -> dict[str, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    loop_body()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"cpu_us": cpu / units * 1e6, "wall_us": wall / units * 1e6}


def run_blocking(module: str, dsn: str, scenario: str, queries: int, fetches: int) -> dict[str, float]:
    params = connect_params(dsn)
    if module == "pymysql":
        import pymysql

        conn = pymysql.connect(**params)
    else:
        import MySQLdb

        params["passwd"] = params.pop("password")
        params["db"] = params.pop("database")
        conn = MySQLdb.connect(**params)
    cur = conn.cursor()
    sql = "SELECT 1" if scenario == "select1" else f"SELECT * FROM {TABLE}"
    n = queries if scenario == "select1" else fetches
    for _ in range(100 if scenario == "select1" else 1):
        cur.execute(sql)
        cur.fetchall()

    def body() -> None:
        for _ in range(n):
            cur.execute(sql)
            cur.fetchall()

    result = _measure(body, n if scenario == "select1" else n * ROWS)
    conn.close()
    return result


def run_async(client: str, dsn: str, scenario: str, queries: int, fetches: int) -> dict[str, float]:
    params = connect_params(dsn)
    sql = "SELECT 1" if scenario == "select1" else f"SELECT * FROM {TABLE}"
    n = queries if scenario == "select1" else fetches
    units = n if scenario == "select1" else n * ROWS

    async def main() -> dict[str, float]:
        if client.startswith("tornpool"):
            import tornpool

            conn = await tornpool.connect(dsn)

            async def query() -> Any:
                return (await conn.execute(sql)).fetchall()

            async def close() -> None:
                await conn.close()

        elif client == "aiomysql":
            import aiomysql

            p = dict(params)
            p["db"] = p.pop("database")
            conn = await aiomysql.connect(**p)
            cur = await conn.cursor()

            async def query() -> Any:
                await cur.execute(sql)
                return await cur.fetchall()

            async def close() -> None:
                conn.close()

        elif client == "asyncmy":
            import asyncmy

            p = dict(params)
            p["db"] = p.pop("database")
            conn = await asyncmy.connect(**p)
            cur = conn.cursor()

            async def query() -> Any:
                await cur.execute(sql)
                return await cur.fetchall()

            async def close() -> None:
                conn.close()

        else:
            raise SystemExit(f"unknown client {client}")
        for _ in range(100 if scenario == "select1" else 1):
            await query()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            await query()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await close()
        return {"cpu_us": cpu / units * 1e6, "wall_us": wall / units * 1e6}

    return asyncio.run(main())


def child(args: argparse.Namespace) -> None:
    if args.client in ("pymysql", "mysqlclient"):
        result = run_blocking(args.client, args.dsn, args.scenario, args.queries, args.fetches)
    else:
        result = run_async(args.client, args.dsn, args.scenario, args.queries, args.fetches)
    if args.client.startswith("tornpool"):
        import tornpool.codec

        result["codec"] = tornpool.codec.IMPL  # type: ignore[assignment]
    print(json.dumps(result))


# -- orchestration -----------------------------------------------------------------------


def available(client: str) -> str | None:
    module = {"mysqlclient": "MySQLdb", "tornpool-pure": "tornpool"}.get(client, client)
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed ({exc.name})"
    return None


def spawn(client: str, scenario: str, args: argparse.Namespace) -> dict[str, float] | str:
    env = dict(os.environ)
    if client == "tornpool-pure":
        env["TORNPOOL_CODEC"] = "python"
    elif client == "tornpool":
        env.pop("TORNPOOL_CODEC", None)
    cmd = [
        sys.executable, "-m", "bench.core_bench", "--child", "--client", client, "--scenario", scenario,
        "--dsn", args.dsn, "--queries", str(args.queries), "--fetches", str(args.fetches),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode:
        return "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def orchestrate(args: argparse.Namespace) -> None:
    prepare(args.dsn)
    clients = args.clients.split(",") if args.clients else CLIENTS
    missing = {c: available(c) for c in clients}
    active = [c for c in clients if missing[c] is None]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    errors: dict[tuple[str, str], str] = {}
    scenarios = ["select1", "fetch10k"]
    for rnd in range(args.runs):
        for scenario in scenarios:
            for client in active:
                got = spawn(client, scenario, args)
                if isinstance(got, str):
                    errors[(client, scenario)] = got
                else:
                    results.setdefault((client, scenario), []).append(got)
        print(f"round {rnd + 1}/{args.runs} done", file=sys.stderr)

    def med(client: str, scenario: str, key: str) -> float | None:
        runs = results.get((client, scenario))
        return statistics.median(r[key] for r in runs) if runs else None

    print(f"\nclient benchmark: {args.runs} rounds (median), {args.queries} x SELECT 1, "
          f"{args.fetches} x {ROWS}-row fetch; ratios vs blocking PyMySQL in this run\n")
    header = ("| client | SELECT 1 CPU us/q | x PyMySQL | SELECT 1 wall us/q | 10k fetch CPU us/row | x PyMySQL "
              "| 10k fetch wall us/row | rows/s |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    base_q = med("pymysql", "select1", "cpu_us")
    base_r = med("pymysql", "fetch10k", "cpu_us")
    for client in clients:
        if missing[client]:
            print(f"| {client} | {missing[client]} |||||||")
            continue
        q, qw = med(client, "select1", "cpu_us"), med(client, "select1", "wall_us")
        r, rw = med(client, "fetch10k", "cpu_us"), med(client, "fetch10k", "wall_us")

        def f(v: float | None, fmt: str = "{:.2f}") -> str:
            return fmt.format(v) if v is not None else "-"

        print(
            f"| {client} | {f(q)} | {f(q / base_q if q and base_q else None)} | {f(qw)} | {f(r, '{:.3f}')} "
            f"| {f(r / base_r if r and base_r else None)} | {f(rw, '{:.3f}')} | {f(1e6 / rw if rw else None, '{:,.0f}')} |"
        )
    for (client, scenario), msg in errors.items():
        print(f"\n{client} {scenario}: {msg}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({f"{c}/{s}": v for (c, s), v in results.items()}, fh, indent=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--fetches", type=int, default=5)
    parser.add_argument("--clients", default="")
    parser.add_argument("--json", default="")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="with a throwaway server, do not pin it and the clients to separate CPUs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    with bench_server(args.dsn, args.pin) as dsn:
        args.dsn = dsn
        orchestrate(args)


if __name__ == "__main__":
    main()
