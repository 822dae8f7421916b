"""What the executor pool costs per call when the database costs nothing:
``ExecutorPool`` against ``loop.run_in_executor`` over a DB-API module whose
calls return at once (``instantdb``, defined here), 100 coroutines on 10
connections / threads, each (contender, round) in a fresh process pinned to
one CPU, the order alternating from round to round.

    python -m bench dbapi --overhead-only [--runs 5] [--overhead-calls 30000]

This is the hand-off alone: the loop's side of a call, the thread's side,
and the GIL passing between eleven threads -- what the pipeline of
``tornpool/dbapi/_executor_pooled.py`` is for.  Printed, not saved.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import _stats

CONTENDERS = ("executor pool", "run_in_executor")
CONCURRENCY = 100
THREADS = 10


def instant_module() -> types.ModuleType:
    """A DB-API 2 module whose every call returns at once with one row."""
    mod = types.ModuleType("instantdb")
    mod.apilevel, mod.threadsafety, mod.paramstyle = "2.0", 1, "qmark"  # type: ignore[attr-defined]

    class Error(Exception):
        pass

    class Cursor:
        description = (("x", None, None, None, None, None, None),)
        rowcount = 1
        lastrowid = None

        def execute(self, sql: str, params: Any = None) -> None:
            pass

        def fetchall(self) -> list[tuple[int]]:
            return [(1,)]

        def close(self) -> None:
            pass

    class Connection:
        autocommit = True

        def cursor(self) -> Cursor:
            return Cursor()

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            pass

    for name in ("Error", "InterfaceError", "DatabaseError", "OperationalError"):
        setattr(mod, name, Error)
    mod.connect = lambda *a, **k: Connection()  # type: ignore[attr-defined]
    return mod


async def _timed(call: Any, calls: int) -> tuple[float, float]:
    """(calls/s, CPU us per call) of ``CONCURRENCY`` coroutines sharing ``calls``."""
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return calls / wall, cpu / calls * 1e6


async def _executor_pool(calls: int) -> tuple[float, float]:
    from tornpool.dbapi import ExecutorPool

    async with ExecutorPool(instant_module(), size=THREADS) as pool:
        async def call() -> None:
            (await pool.execute("SELECT 1")).fetchall()

        await _timed(call, 1000)  # warm
        return await _timed(call, calls)


async def _run_in_executor(calls: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    mod = instant_module()
    local = threading.local()

    def query() -> list[Any]:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = mod.connect()
        cur = conn.cursor()
        try:
            cur.execute("SELECT 1")
            return list(cur.fetchall())
        finally:
            cur.close()

    with ThreadPoolExecutor(THREADS) as executor:
        async def call() -> None:
            await loop.run_in_executor(executor, query)

        await _timed(call, 1000)
        return await _timed(call, calls)


def child(contender: str, calls: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    run = _executor_pool if contender == CONTENDERS[0] else _run_in_executor
    qps, us = asyncio.run(run(calls))
    print(json.dumps({"qps": qps, "cpu_us": us}))


def comparison(rounds: int, calls: int) -> str:
    """``rounds`` interleaved rounds in child processes; medians as Markdown."""
    cpu = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    figures: dict[str, list[dict[str, float]]] = {c: [] for c in CONTENDERS}
    for r in range(rounds):
        order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
        for contender in order:
            proc = subprocess.run([sys.executable, "-m", "bench.dbapi_overhead", contender,
                                   str(calls), str(cpu)], capture_output=True, text=True,
                                  timeout=600, check=True)
            figures[contender].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    bare = figures[CONTENDERS[1]]
    rows = []
    for contender in CONTENDERS:
        got = figures[contender]
        cpu_ratio = statistics.median(g["cpu_us"] / b["cpu_us"] for g, b in zip(got, bare))
        rows.append([contender, _stats.fmt(statistics.median(g["qps"] for g in got), ",.0f"),
                     _stats.fmt(statistics.median(g["cpu_us"] for g in got), ".2f"),
                     _stats.ratio(cpu_ratio)])
    head = (f"Overhead without a server (instantdb: every call returns at once), {CONCURRENCY} "
            f"coroutines, {THREADS} connections/threads, one CPU (#{cpu}), {rounds} rounds of "
            f"{calls} calls, medians:")
    return "\n".join([head, "", _stats.table(["contender", "calls/s", "CPU us/call",
                                                "CPU x run_in_executor"], rows, numeric_from=1)])


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
