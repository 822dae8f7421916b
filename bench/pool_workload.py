"""One pool's ``bench pool`` round, in this process.

``bench pool`` spawns ``python -m bench.pool_workload POOL DSN CONFIG_JSON``
once per (pool, round).  For each scenario the child opens a fresh pool of
``size`` connections, warms it (every coroutine runs two requests), then
``concurrency`` coroutines each run ``queries / concurrency`` requests back to
back; a request's latency is taken around the whole of it, acquire included.
Last, the bare acquire+release cost: one coroutine on an idle pool, batches
of ``acquires``.  It prints one JSON line of figures.

Client CPU is ``time.process_time()``: every thread of this process (the
mysqlclient threads too), none of the server's.  Beside the latencies it
records what a slow request may have waited behind: the longest time in
which no request completed, and the garbage collector's runs (``gc.callbacks``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from typing import Any

from bench._meter import Meter
from bench.pool_adapters import OPENERS

SCENARIOS = {
    "select1": ("SELECT 1", 1),
    "rows20": ("SELECT id, name, qty, price, created, note FROM pool_bench_rows ORDER BY id LIMIT 20", 20),
    "sleep5ms": ("SELECT SLEEP(0.005)", 1),
}
"""name -> (SQL, rows each request must return)."""

ACQUIRE_BATCHES = 5


async def scenario(pool: str, dsn: str, name: str, queries: int, concurrency: int,
                   size: int) -> dict[str, Any]:
    """Figures of one scenario on a fresh pool."""
    sql, rows = SCENARIOS[name]
    put = await OPENERS[pool](dsn, size)
    try:
        async def warm() -> None:
            for _ in range(2):
                got = await put.request(sql)
                if got != rows:
                    raise RuntimeError(f"{sql!r} returned {got} rows, not {rows}")

        await asyncio.gather(*[warm() for _ in range(concurrency)])
        per = max(1, queries // concurrency)
        latencies: list[float] = []
        finished: list[float] = []

        async def worker() -> None:
            clock = time.perf_counter
            request = put.request
            for _ in range(per):
                t = clock()
                await request(sql)
                t1 = clock()
                latencies.append(t1 - t)
                finished.append(t1)

        meter = Meter()
        with GcWatch() as collections:
            meter.start()
            await asyncio.gather(*[worker() for _ in range(concurrency)])
            out = meter.stop(len(latencies))
    finally:
        await put.close()
    latencies.sort()
    n = len(latencies)
    out.update(qps=1e6 / out["wall_us"], p50_ms=statistics.median(latencies) * 1e3,
               p99_ms=latencies[min(n - 1, int(n * 0.99))] * 1e3, max_ms=latencies[-1] * 1e3)
    out["max_over_p50"] = out["max_ms"] / out["p50_ms"]
    out.update(pause_figures(finished, collections))
    return out


class GcWatch:
    """The garbage collections of this process while the block runs:
    ``(generation, seconds)`` each."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, float]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.runs.append((info["generation"], time.perf_counter() - self._started))

    def __enter__(self) -> list[tuple[int, float]]:
        gc.callbacks.append(self._callback)
        return self.runs

    def __exit__(self, *exc: Any) -> None:
        gc.callbacks.remove(self._callback)


def pause_figures(finished: list[float], collections: list[tuple[int, float]]) -> dict[str, float]:
    """What the slowest requests may have waited behind: the longest time no
    request completed, and the collector's runs (a full collection stops the
    whole process)."""
    finished.sort()
    gap = max((b - a for a, b in zip(finished, finished[1:])), default=0.0)
    return {"pause_ms": gap * 1e3, "gc_runs": float(len(collections)),
            "gc_full": float(sum(1 for g, _ in collections if g == 2)),
            "gc_max_ms": max((d for _, d in collections), default=0.0) * 1e3}


async def acquire_cost(pool: str, dsn: str, acquires: int, size: int) -> dict[str, Any]:
    """CPU and wall microseconds of one acquire+release on an idle pool
    (median of the batches)."""
    put = await OPENERS[pool](dsn, size)
    try:
        for _ in range(min(1000, acquires)):
            await put.acquire_release()
        batches = []
        for _ in range(ACQUIRE_BATCHES):
            meter = Meter()
            meter.start()
            for _ in range(acquires):
                await put.acquire_release()
            batches.append(meter.stop(acquires))
    finally:
        await put.close()
    return {key: statistics.median(b[key] for b in batches) for key in ("cpu_us", "wall_us")}


async def run(pool: str, dsn: str, config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in config["scenarios"]:
        queries = config["sleep_queries"] if name == "sleep5ms" else config["queries"]
        try:
            out[name] = await scenario(pool, dsn, name, queries, config["concurrency"], config["size"])
        except Exception as exc:  # noqa: BLE001 - a peer that breaks: record how, go on
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        out["acquire"] = await acquire_cost(pool, dsn, config["acquires"], config["size"])
    except Exception as exc:  # noqa: BLE001
        out["acquire"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in OPENERS:
        raise SystemExit(f"usage: python -m bench.pool_workload {{{'|'.join(OPENERS)}}} DSN CONFIG_JSON")
    pool, dsn, config = args[0], args[1], json.loads(args[2])
    # one loop for the whole child: TorMySQL keeps the first loop it sees
    print(json.dumps(asyncio.run(run(pool, dsn, config))))


if __name__ == "__main__":
    main()
