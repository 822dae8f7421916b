"""SQLite process proxy benchmark: the proxy vs one process running sqlite3 in threads.

* ``reads``: read-heavy CPU-bound queries (about 1 ms each) from ``--threads``
  threads (ThreadPoolExecutor): the proxy with each of ``--read-readers``
  reader counts (2 and 3: as many readers as cores, and one more) vs one
  process with one sqlite3 connection per thread.  Three shapes: a
  recursive CTE, a GROUP BY over 4000 rows, a range scan returning 1000 rows.
* ``writes``: small write transactions (3 INSERTs) from the same threads:
  the proxy with each writer mode (``writer="process"`` and ``"thread"``;
  ``executemany``, one request; and a ``transaction()`` block, five) vs one
  process (a connection per thread, and one shared connection behind a
  lock), with ``synchronous`` FULL and NORMAL.  Each proxy runs with its
  default ``group_commit`` (on, except for the in-process writer with
  NORMAL); the suite prints which.
* ``overhead``: one ``SELECT 1`` at a time -- sqlite3 in-process, the proxy's
  blocking call, its awaitable (``loop.add_reader``), and the blocking call in
  ``run_in_executor``: wall and this process's CPU per call.
* ``restart``: start-up of a proxy, and time from kill -9 of a worker to
  the next call that succeeds.

Contenders run interleaved, round by round; figures are medians over
``--rounds``.  Ratios are proxy / one process (higher is better for
throughput).  Each suite prints the load average: the proxy needs idle cores
to win, so on a shared machine compare runs made at a low load.

    .venv/bin/python -m bench.sqlite_bench [--rounds 5] [--threads 8] [--readers 2]
        [--read-readers 2,3] [--seconds 1.5] [--only reads,writes,overhead,restart]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tornpool.dbapi import SQLiteProxy  # noqa: E402

QUERIES: Dict[str, Tuple[str, Tuple[Any, ...]]] = {
    "cte": ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
            "SELECT sum(x) FROM c", (6000,)),
    "agg": ("SELECT a % 10, count(*), sum(id), max(b) FROM t WHERE id <= ? GROUP BY 1", (4000,)),
    "rows": ("SELECT id, a, b FROM t WHERE id BETWEEN ? AND ?", (5000, 5999)),
}
INSERT = "INSERT INTO w (k, v) VALUES (?, ?)"

Op = Callable[[int], Any]


def make_db(path: str, rows: int = 20000) -> None:
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
    c.execute("CREATE TABLE w (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")
    c.execute("BEGIN")
    c.executemany("INSERT INTO t (a, b) VALUES (?, ?)",
                  ((i * 7919 % 1000, "row-%06d" % i) for i in range(rows)))
    c.execute("COMMIT")
    c.close()


def run_threads(op: Op, calls: int, threads: int,
                latencies: Optional[List[float]] = None) -> float:
    """Wall seconds for ``calls`` calls of ``op(i)`` spread over ``threads``;
    each call's own seconds are appended to ``latencies`` if given."""
    if latencies is not None:
        op = timed_calls(op, latencies)
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(op, range(threads * 2)))  # warm: connections, statement caches
        if latencies is not None:
            latencies.clear()
        start = time.perf_counter()
        list(ex.map(op, range(calls)))
        return time.perf_counter() - start


def timed_calls(op: Op, latencies: List[float]) -> Op:
    """``op``, appending each call's seconds to ``latencies``."""
    def timed_op(i: int) -> Any:
        start = time.perf_counter()
        try:
            return op(i)
        finally:
            latencies.append(time.perf_counter() - start)
    return timed_op


def spread(latencies: List[float]) -> Tuple[float, float, float]:
    """(p50, p99, max) of ``latencies``, in ms."""
    ordered = sorted(latencies)
    return (ordered[len(ordered) // 2] * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3,
            ordered[-1] * 1e3)


class Local:
    """One sqlite3 connection per thread (the one-process baseline)."""

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.local = threading.local()
        self.all: List[sqlite3.Connection] = []
        self.lock = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        c = getattr(self.local, "c", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            c.execute("PRAGMA synchronous=%s" % self.synchronous)
            self.local.c = c
            with self.lock:
                self.all.append(c)
        return c

    def close(self) -> None:
        for c in self.all:
            c.close()


def workers_cpu(proxy: SQLiteProxy) -> float:
    """CPU seconds the proxy's worker processes used so far (Linux /proc)."""
    total = 0.0
    for w in proxy.workers():
        if w.pid is None:  # the in-process writer: counted in this process's time
            continue
        try:
            with open("/proc/%d/stat" % w.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def median_rows(results: Dict[str, List[float]]) -> Dict[str, float]:
    return {k: statistics.median(v) for k, v in results.items()}


# -- reads ------------------------------------------------------------------------------------


def bench_reads(path: str, args: argparse.Namespace) -> None:
    local = Local(path)
    counts = [int(n) for n in args.read_readers.split(",")]
    proxies = {n: SQLiteProxy(path, readers=n) for n in counts}
    print("\n## reads: %d threads, proxy with %s readers vs one process (a connection per "
          "thread); %d rounds; %s\n" % (args.threads, " / ".join(map(str, counts)), args.rounds,
                                        load()))
    print("| query | 1 thread ms/q | one process q/s | "
          + " | ".join("proxy, %d readers q/s | / one process" % n for n in counts)
          + " | CPU ms/q one process | "
          + " | ".join("CPU ms/q proxy, %d readers (all processes)" % n for n in counts) + " |")
    print("|---|" + "---:|" * (3 + 3 * len(counts)))
    for name, (sql, params) in QUERIES.items():
        def direct(i: int, sql: str = sql, params: Any = params) -> Any:
            return local.conn().execute(sql, params).fetchall()

        def proxied(proxy: SQLiteProxy, sql: str = sql, params: Any = params) -> Op:
            return lambda i: proxy.execute(sql, params).fetchall()

        direct(0)  # open this thread's connection first
        start = time.perf_counter()
        for i in range(20):
            direct(i)
        single = (time.perf_counter() - start) / 20
        calls = max(int(args.seconds / single), 50)
        order: List[Tuple[Any, Op]] = [("one", direct)] + [(n, proxied(proxies[n])) for n in counts]
        rates: Dict[Any, List[float]] = {k: [] for k, _ in order}
        cpu: Dict[Any, List[float]] = {k: [] for k, _ in order}
        for r in range(args.rounds):
            for label, op in order[r % len(order):] + order[:r % len(order)]:
                own = proxies.get(label)
                c = time.process_time() + (workers_cpu(own) if own is not None else 0.0)
                rates[label].append(calls / run_threads(op, calls, args.threads))
                c = time.process_time() + (workers_cpu(own) if own is not None else 0.0) - c
                cpu[label].append(c / (calls + 2 * args.threads) * 1e3)
        med, mcpu = median_rows(rates), median_rows(cpu)
        print("| %s | %.2f | %.0f | %s | %.2f | %s |" % (
            name, single * 1e3, med["one"],
            " | ".join("%.0f | %.2fx" % (med[n], med[n] / med["one"]) for n in counts),
            mcpu["one"], " | ".join("%.2f" % mcpu[n] for n in counts)))
    for proxy in proxies.values():
        proxy.close()
    local.close()


# -- writes -----------------------------------------------------------------------------------


def bench_writes(path: str, args: argparse.Namespace) -> None:
    print("\n## writes: transactions of 3 INSERTs from %d threads; %d rounds; %s\n"
          % (args.threads, args.rounds, load()))
    print("| synchronous | one process, conn per thread tx/s | one process, shared conn + lock "
          "tx/s | writer process: executemany tx/s | writer process: transaction() tx/s | "
          "writer thread: executemany tx/s | writer thread: transaction() tx/s | "
          "best writer process / best one process | best writer thread / best one process |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    grouped: List[str] = []
    waits: List[Tuple[str, Dict[str, Tuple[float, ...]]]] = []
    for sync in ("FULL", "NORMAL"):
        local = Local(path, sync)
        shared = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        shared.execute("PRAGMA synchronous=%s" % sync)
        lock = threading.Lock()
        proxies = {mode: SQLiteProxy(path, readers=args.readers, synchronous=sync, writer=mode)
                   for mode in ("process", "thread")}

        def per_thread(i: int) -> None:
            c = local.conn()
            c.execute("BEGIN IMMEDIATE")
            for j in range(3):
                c.execute(INSERT, (i, "x" * 20))
            c.execute("COMMIT")

        def locked(i: int) -> None:
            with lock:
                shared.execute("BEGIN IMMEDIATE")
                for j in range(3):
                    shared.execute(INSERT, (i, "x" * 20))
                shared.execute("COMMIT")

        def many(proxy: SQLiteProxy) -> Op:
            def op(i: int) -> None:
                proxy.executemany(INSERT, [(i, "x" * 20)] * 3)
            return op

        def block(proxy: SQLiteProxy) -> Op:
            def op(i: int) -> None:
                with proxy.transaction() as tx:
                    for j in range(3):
                        tx.execute(INSERT, (i, "x" * 20))
            return op

        start = time.perf_counter()
        for i in range(20):
            locked(i)
        calls = max(int(args.seconds / ((time.perf_counter() - start) / 20)), 50)
        ops = [("thread", per_thread), ("locked", locked),
               ("p-many", many(proxies["process"])), ("p-block", block(proxies["process"])),
               ("t-many", many(proxies["thread"])), ("t-block", block(proxies["thread"]))]
        rates: Dict[str, List[float]] = {k: [] for k, _ in ops}
        spreads: Dict[str, List[Tuple[float, float, float]]] = {k: [] for k, _ in ops}
        for r in range(args.rounds):
            for label, op in ops[r % len(ops):] + ops[:r % len(ops)]:
                latencies: List[float] = []
                rates[label].append(calls / run_threads(op, calls, args.threads, latencies))
                spreads[label].append(spread(latencies))
        waits.append((sync, {k: tuple(statistics.median(s[j] for s in v) for j in range(3))
                             for k, v in spreads.items()}))
        med = median_rows(rates)
        best_one = max(med["thread"], med["locked"])
        print("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2fx | %.2fx |" % (
            sync, med["thread"], med["locked"], med["p-many"], med["p-block"], med["t-many"],
            med["t-block"], max(med["p-many"], med["p-block"]) / best_one,
            max(med["t-many"], med["t-block"]) / best_one))
        grouped.append("%s: %s" % (sync, ", ".join(
            "writer %s %s" % (mode, "on" if proxy.group_commit else "off")
            for mode, proxy in proxies.items())))
        for proxy in proxies.values():
            proxy.close()
        shared.close()
        local.close()
    print("\n(group commit -- %s; %s at the end)" % ("; ".join(grouped), load()))
    print("\nLatency of one transaction, ms (p50 / p99 / max; medians over the rounds):\n")
    labels = list(waits[0][1])
    names = {"thread": "conn per thread", "locked": "shared conn + lock",
             "p-many": "writer process: executemany", "p-block": "writer process: transaction()",
             "t-many": "writer thread: executemany", "t-block": "writer thread: transaction()"}
    print("| synchronous | " + " | ".join(names[k] for k in labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for sync, per_label in waits:
        print("| %s | %s |" % (sync, " | ".join("%.2f / %.1f / %.0f" % per_label[k]
                                                for k in labels)))


# -- per-call overhead ----------------------------------------------------------------------------


def timed(fn: Callable[[], Any], n: int) -> Tuple[float, float]:
    """(wall us, this process's CPU us) per call."""
    w, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - w) / n * 1e6, (time.process_time() - c) / n * 1e6


async def timed_async(make: Callable[[], Any], n: int, concurrency: int) -> Tuple[float, float]:
    async def worker(k: int) -> None:
        for _ in range(k):
            await make()

    w, c = time.perf_counter(), time.process_time()
    await asyncio.gather(*[worker(n // concurrency) for _ in range(concurrency)])
    return (time.perf_counter() - w) / n * 1e6, (time.process_time() - c) / n * 1e6


def bench_overhead(path: str, args: argparse.Namespace) -> None:
    n = args.calls
    direct = sqlite3.connect(path, isolation_level=None)
    proxy = SQLiteProxy(path, readers=args.readers)
    aproxy = proxy.aio()
    pool = ThreadPoolExecutor(8)
    results: Dict[str, List[Tuple[float, float]]] = {}

    async def async_rounds() -> None:
        loop = asyncio.get_running_loop()
        for conc in (1, 8):
            results.setdefault("await proxy.execute, %d coroutine(s)" % conc, []).append(
                await timed_async(lambda: aproxy.execute("SELECT 1"), n, conc))
            results.setdefault("run_in_executor(proxy.execute), %d coroutine(s)" % conc, []).append(
                await timed_async(lambda: loop.run_in_executor(pool, proxy.execute, "SELECT 1"),
                                  n, conc))

    for _ in range(args.rounds):
        results.setdefault("sqlite3 in-process", []).append(
            timed(lambda: direct.execute("SELECT 1").fetchall(), n))
        results.setdefault("proxy.execute (blocking)", []).append(
            timed(lambda: proxy.execute("SELECT 1"), n))
        asyncio.run(async_rounds())
    print("\n## per-call overhead: SELECT 1, %d calls, medians of %d rounds; %s\n"
          % (n, args.rounds, load()))
    print("| call | wall us/call | this process CPU us/call |")
    print("|---|---:|---:|")
    for label, runs in results.items():
        print("| %s | %.1f | %.1f |" % (label, statistics.median(r[0] for r in runs),
                                        statistics.median(r[1] for r in runs)))
    # what materialising costs: 1000 rows pickled in the worker, unpickled here
    sql, params = QUERIES["rows"]
    d = timed(lambda: direct.execute(sql, params).fetchall(), 200)
    p = timed(lambda: proxy.execute(sql, params).fetchall(), 200)
    print("\n1000-row result (3 columns): sqlite3 in-process %.0f us, proxy %.0f us wall, %.0f us "
          "CPU here (%.2f us/row of CPU here)" % (d[0], p[0], p[1], p[1] / 1000))
    pool.shutdown()
    proxy.close()
    direct.close()


# -- start and restart ------------------------------------------------------------------------------


def bench_restart(path: str, args: argparse.Namespace) -> None:
    starts, reader_back, writer_back = [], [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        proxy = SQLiteProxy(path, readers=args.readers, writer="process")
        starts.append(time.perf_counter() - t)
        for role, out, sql in (("reader", reader_back, "SELECT 1"),
                               ("writer", writer_back, "INSERT INTO w (k) VALUES (1)")):
            pid = next(w.pid for w in proxy.workers() if w.role == role)
            assert pid
            t = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            while True:
                try:
                    proxy.execute(sql)
                    break
                except Exception:  # noqa: BLE001 - the crashed call itself, then retry
                    pass
            out.append(time.perf_counter() - t)
        proxy.close()
    print("\n## start and restart (%d readers), medians of %d\n" % (args.readers, args.rounds))
    print("| event | ms |")
    print("|---|---:|")
    print("| SQLiteProxy(...) until every worker is ready | %.0f |" % (statistics.median(starts) * 1e3))
    print("| kill -9 an idle reader -> next read returns | %.0f |" % (statistics.median(reader_back) * 1e3))
    print("| kill -9 the idle writer -> next write returns | %.0f |" % (statistics.median(writer_back) * 1e3))


SUITES = {"reads": bench_reads, "writes": bench_writes, "overhead": bench_overhead,
          "restart": bench_restart}


def main(argv: List[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--read-readers", default="2,3",
                    help="reader counts of the proxies the reads suite compares (default 2,3)")
    ap.add_argument("--seconds", type=float, default=1.5, help="target length of one run")
    ap.add_argument("--calls", type=int, default=5000, help="calls per overhead run")
    ap.add_argument("--only", default=",".join(SUITES))
    args = ap.parse_args(argv)
    print("# SQLite %s, Python %s, %d CPUs, %s" % (sqlite3.sqlite_version, sys.version.split()[0],
                                                   os.cpu_count() or 0, load()))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        make_db(path)
        for name in args.only.split(","):
            SUITES[name.strip()](path, args)


if __name__ == "__main__":
    main()
