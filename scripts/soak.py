"""Soak test for tornpool's Pool: mixed load with faults, 10 minutes by default.

    .venv/bin/python scripts/soak.py [--seconds 600] [--workers 60] [--max-size 12]

Starts a throwaway MariaDB and a FaultProxy in front of it, runs a mixed
load (point selects, 20-row selects, list and context transactions, statements
that time out, requests cancelled mid-flight), and injects a fault every few
seconds: latency, reset of every link, half-close, blackhole, refused
connects, and ``kill -9`` of the server followed by a restart.  The cap is
checked on the server outside network faults (plus 8 s to settle): while a
link is cut, the server keeps running statements the client gave up on and
nobody can tell it; "server_max=a/b" prints both figures.  Every 10 s it
prints requests, errors by type, latency (median / p99 / max), RSS and the
pool's stats; at the end it checks the invariants (cap on the server, nothing
leased, zero server connections after close) and exits non-zero on a breach.
Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import resource
import statistics
import sys
import time
from typing import Any, Callable, Counter, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pymysql  # noqa: E402

from tornpool.errors import MySQLError  # noqa: E402
from tornpool.pool import Pool  # noqa: E402
from tornpool.testing import FaultProxy, MariaDBServer  # noqa: E402

USER = "soak"


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def server_count(srv: MariaDBServer) -> int:
    c = pymysql.connect(host="127.0.0.1", port=srv.port, user="root", autocommit=True)
    try:
        cur = c.cursor()
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user=%s", (USER,))
        return int(cur.fetchone()[0])
    finally:
        c.close()


def prepare(srv: MariaDBServer) -> None:
    c = pymysql.connect(host="127.0.0.1", port=srv.port, user="root", autocommit=True)
    cur = c.cursor()
    cur.execute("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY 'pw'" % USER)
    cur.execute("GRANT ALL ON *.* TO '%s'@'%%'" % USER)
    cur.execute("CREATE TABLE IF NOT EXISTS test.soak_rows (id INT PRIMARY KEY, v VARCHAR(40))")
    cur.execute("REPLACE INTO test.soak_rows VALUES " + ",".join("(%d,'row %d')" % (i, i) for i in range(20)))
    cur.execute("CREATE TABLE IF NOT EXISTS test.soak_log (id INT AUTO_INCREMENT PRIMARY KEY, w INT)")
    c.close()


class Soak:
    def __init__(self, args: argparse.Namespace, srv: MariaDBServer, proxy: FaultProxy) -> None:
        self.args, self.srv, self.proxy = args, srv, proxy
        self.rnd = random.Random(args.seed)
        self.requests = 0
        self.ok = 0
        self.errors: Counter[str] = collections.Counter()
        self.lat: List[float] = []
        self.max_lat = 0.0
        self.max_server = 0        # whole run
        self.max_server_clean = 0  # outside network faults (+ settle time)
        self.partition_until = 0.0
        self.faults: Counter[str] = collections.Counter()
        self.stop = False
        dsn = "mysql://%s:pw@127.0.0.1:%d/test" % (USER, proxy.port)
        self.pool = Pool(dsn, size=args.size, max_size=args.max_size, timeout=2.0,
                         max_lifetime=60.0, max_idle=10.0, connect_timeout=2, name="soak")

    async def one(self, wid: int) -> None:
        r = self.rnd.random()
        pool = self.pool
        if r < 0.45:
            (await pool.execute("SELECT 1", timeout=3)).fetchall()
        elif r < 0.75:
            (await pool.execute("SELECT id, v FROM soak_rows ORDER BY id", timeout=3)).fetchall()
        elif r < 0.85:
            async with pool.transaction(timeout=3) as conn:
                await conn.execute("INSERT INTO soak_log (w) VALUES (%s)", (wid,), timeout=2)
                await conn.execute("SELECT COUNT(*) FROM soak_rows", timeout=2)
        elif r < 0.92:
            await pool.transaction(["SELECT 1", ("SELECT %s", (wid,))], timeout=3)
        elif self.args.no_abandon:
            (await pool.execute("SELECT 1", timeout=3)).fetchall()
        elif r < 0.99:
            (await pool.execute("SELECT 1", timeout=3)).fetchall()
        elif r < 0.995:
            await pool.execute("SELECT SLEEP(0.5)", timeout=0.05)  # CommandTimeout
        else:
            await asyncio.wait_for(pool.execute("SELECT SLEEP(0.2)"), 0.02)  # cancelled

    async def worker(self, wid: int) -> None:
        while not self.stop:
            t = time.perf_counter()
            self.requests += 1
            try:
                await self.one(wid)
                self.ok += 1
            except (MySQLError, asyncio.TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)
            dt = time.perf_counter() - t
            self.lat.append(dt)
            self.max_lat = max(self.max_lat, dt)

    async def faults_loop(self) -> None:
        loop = asyncio.get_running_loop()
        kinds: Dict[str, Callable[[], Any]] = {
            "delay": lambda: self.proxy.delay(0.05),
            "reset_all": self.proxy.reset_all,
            "half_close": self.proxy.half_close,
            "blackhole": self.proxy.blackhole,
            "refuse": self.proxy.refuse,
            "kill9": self.srv.kill,
        }
        while not self.stop:
            await asyncio.sleep(self.rnd.uniform(4, 8))
            if self.stop or self.args.no_faults:
                break
            kind = self.rnd.choice(list(kinds))
            self.faults[kind] += 1
            if kind in ("reset_all", "half_close", "blackhole", "delay"):
                # links cut or stalled between client and server: the server may keep
                # running statements the client gave up on; it cannot be told
                self.partition_until = float("inf")
            await loop.run_in_executor(None, kinds[kind])
            await asyncio.sleep(self.rnd.uniform(0.5, 2.5))
            if self.partition_until == float("inf"):
                self.partition_until = time.monotonic() + 8.0
            if kind == "kill9":
                await loop.run_in_executor(None, self.srv.restart)
            elif kind == "refuse":
                self.proxy.accept_again()
            elif kind in ("delay", "blackhole"):
                self.proxy.pass_through()

    async def watch_server(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop:
            try:
                t = time.monotonic()
                n = await loop.run_in_executor(None, server_count, self.srv)
                self.max_server = max(self.max_server, n)
                if t > self.partition_until and time.monotonic() > self.partition_until:
                    self.max_server_clean = max(self.max_server_clean, n)
            except pymysql.MySQLError:
                pass  # server down
            await asyncio.sleep(0.05)

    def report(self, t0: float, final: bool = False) -> None:
        lat = sorted(self.lat) or [0.0]
        s = self.pool.stats()
        print("%s t=%5.0fs req=%d ok=%d err=%s lat med=%.1fms p99=%.1fms max=%.0fms rss=%.1fMB "
              "server_max=%d/%d pool_size=%d/%d lost=%d conn_err=%d" % (
                  "FINAL" if final else "     ", time.monotonic() - t0, self.requests, self.ok,
                  dict(self.errors), statistics.median(lat) * 1e3, lat[int(len(lat) * 0.99)] * 1e3,
                  self.max_lat * 1e3, rss_mb(), self.max_server_clean, self.max_server, s["pool_size"], s["pool_max"],
                  s["connections_lost"], s["connections_errors"]), flush=True)
        if not final:
            self.lat = self.lat[-20000:]

    async def run(self) -> int:
        await self.pool.connect()
        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(self.worker(i)) for i in range(self.args.workers)]
        side = [asyncio.ensure_future(self.faults_loop()), asyncio.ensure_future(self.watch_server())]
        next_report = t0 + 10
        while time.monotonic() - t0 < self.args.seconds:
            await asyncio.sleep(0.2)
            if time.monotonic() >= next_report:
                self.report(t0)
                next_report += 10
        self.stop = True
        await asyncio.gather(*tasks, *side, return_exceptions=True)
        self.proxy.pass_through()
        self.proxy.accept_again()
        if not self.srv.running:
            self.srv.restart()
        # back to health after the last fault
        t_up = time.monotonic()
        while True:
            try:
                await self.pool.execute("SELECT 1", timeout=1)
                break
            except MySQLError:
                if time.monotonic() - t_up > 10:
                    print("pool did not recover within 10 s")
                    return 1
                await asyncio.sleep(0.05)
        self.report(t0, final=True)
        leased = len(self.pool.engine.leases())
        await self.pool.close()
        left = -1
        for _ in range(40):
            left = server_count(self.srv)
            if left == 0:
                break
            await asyncio.sleep(0.05)
        print("faults injected: %s" % dict(self.faults))
        print("invariants: server connections max=%d outside network faults (cap %d; %d including "
              "them), leased at end=%d, server connections after close=%d"
              % (self.max_server_clean, self.args.max_size, self.max_server, leased, left))
        bad = self.max_server_clean > self.args.max_size or leased or left != 0
        print("RESULT:", "FAIL" if bad else "OK")
        return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description="tornpool pool soak test")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--workers", type=int, default=60)
    ap.add_argument("--size", type=int, default=4)
    ap.add_argument("--max-size", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-faults", action="store_true", help="load only (for comparison)")
    ap.add_argument("--no-abandon", action="store_true",
                    help="no statements that time out or are cancelled")
    args = ap.parse_args()
    with MariaDBServer() as srv:
        prepare(srv)
        proxy = FaultProxy.for_server(srv).start()
        try:
            return asyncio.run(Soak(args, srv, proxy).run())
        finally:
            proxy.stop()


if __name__ == "__main__":
    sys.exit(main())
