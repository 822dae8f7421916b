"""Failover soak: a ReplicaSet over real replication, mixed load, a fault every few seconds.

    .venv/bin/python scripts/soak_failover.py [--seconds 120] [--workers 24] [--replicas 2]

Starts a ReplicationCluster (a primary and ``--replicas`` replicas on
loopback, semi-synchronous replication so that an acknowledged commit is on a
replica before the client hears of it) and a ReplicaSet from its multi-host
DSN (the primary pool follows failovers; one replica pool per host).  The
workers insert numbered rows (each acknowledged id logged), read through the
router, and run read-your-writes sessions (write, then read the row back on
the pinned lease: it must be there).  Every 4-8 s one fault, in turn:

* kill -9 of the primary, a pause, promotion of a replica (the old primary
  comes back later as a replica, rebuilt if it held commits nobody received);
* a planned switchover to a replica;
* a replica's SQL thread stopped for 2 s (lag unknown: reads leave it);
* a replica delayed by 3 s for 4 s (lag above the 1 s bound);
* kill -9 of a replica, restarted 1 s later.

Every 10 s it prints requests, errors by type, where reads went, and how
long writes took to resume after each promotion.  At the end it checks: no
request hung or outlived its timeout, every error was one of tornpool's
typed errors, every read-your-writes check saw its write, every
acknowledged insert is on the final primary and none is there twice.  Exits
non-zero on a breach.  Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import statistics
import sys
import time
from typing import Any, Counter, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pymysql  # noqa: E402

from tornpool.errors import MySQLError  # noqa: E402
from tornpool.replicas import ReplicaSet  # noqa: E402
from tornpool.testing import ReplicationCluster, ReplicationError  # noqa: E402

SEMI_SYNC = [
    "--rpl-semi-sync-master-enabled=ON",
    "--rpl-semi-sync-slave-enabled=ON",
    "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
    "--rpl-semi-sync-master-timeout=5000",
]
TIMEOUT = 2.0  # every request's deadline


class Soak:
    def __init__(self, cluster: ReplicationCluster, rs: ReplicaSet, workers: int) -> None:
        self.cluster, self.rs, self.workers = cluster, rs, workers
        self.stop = False
        self.next_id = 0
        self.acked: List[int] = []
        self.ok = 0
        self.errors: Counter[str] = collections.Counter()
        self.untyped: List[str] = []
        self.late: List[float] = []
        self.hung = 0
        self.ryw_failures = 0
        self.read_ports: Counter[int] = collections.Counter()
        self.latencies: List[float] = []
        self.last_ok = 0.0
        self.resumes: List[float] = []
        self.faults: Counter[str] = collections.Counter()

    # -- load --------------------------------------------------------------------

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def one(self) -> None:
        kind = random.random()
        if kind < 0.6:
            req = self.new_id()
            await self.rs.execute("INSERT INTO soak.acks (req) VALUES (%s)", (req,), timeout=TIMEOUT)
            self.acked.append(req)
        elif kind < 0.9:
            cur = await self.rs.read("SELECT @@port, MAX(id) FROM soak.acks", timeout=TIMEOUT)
            self.read_ports[int(cur.fetchone()[0])] += 1
        else:
            req = self.new_id()
            async with self.rs.session(timeout=TIMEOUT) as s:
                await s.execute("INSERT INTO soak.acks (req) VALUES (%s)", (req,), timeout=TIMEOUT)
                self.acked.append(req)
                cur = await s.read("SELECT COUNT(*) FROM soak.acks WHERE req = %s", (req,),
                                   timeout=TIMEOUT)
                if cur.fetchone()[0] != 1:
                    self.ryw_failures += 1

    async def worker(self) -> None:
        while not self.stop:
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(self.one(), 3 * TIMEOUT + 2.0)
            except MySQLError as exc:  # (PoolTimeout, CommandTimeout are TimeoutErrors too)
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.02)
            except asyncio.TimeoutError:
                self.hung += 1
            except Exception as exc:  # noqa: BLE001 - reported as a breach
                self.untyped.append(repr(exc))
            else:
                self.ok += 1
                self.last_ok = time.monotonic()
            took = time.monotonic() - t0
            self.latencies.append(took)
            if took > 3 * TIMEOUT + 0.5:  # a session may wait three deadlines
                self.late.append(took)

    # -- faults ------------------------------------------------------------------

    async def blocking(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)

    async def resumed_after(self, moment: float) -> None:
        deadline = moment + 10.0
        while time.monotonic() < deadline:
            if self.last_ok > moment:
                self.resumes.append(self.last_ok - moment)
                return
            await asyncio.sleep(0.005)
        self.resumes.append(float("inf"))

    async def rejoin(self, old: Any, new: Any) -> None:
        try:
            await self.blocking(self.cluster.demote, old, new)
        except ReplicationError:  # it held commits the new primary never got
            await self.blocking(self.cluster.demote, old, new, rebuild=True)

    async def fault(self, n: int) -> None:
        c = self.cluster
        which = n % 5
        replica = random.choice(c.replicas)
        if which == 0:
            self.faults["kill+promote"] += 1
            old = await self.blocking(c.kill_primary)
            await asyncio.sleep(random.uniform(0.2, 1.0))
            await self.blocking(c.promote, replica)
            await self.resumed_after(time.monotonic())
            await self.rejoin(old, replica)
        elif which == 1:
            self.faults["switchover"] += 1
            await self.blocking(c.switchover, replica)
        elif which == 2:
            self.faults["sql thread stopped"] += 1
            await self.blocking(c.stop_sql_thread, replica)
            await asyncio.sleep(2.0)
            await self.blocking(c.start_sql_thread, replica)
        elif which == 3:
            self.faults["delay 3 s"] += 1
            await self.blocking(c.set_delay, replica, 3)
            await asyncio.sleep(4.0)
            await self.blocking(c.set_delay, replica, 0)
        else:
            self.faults["replica kill -9"] += 1
            await self.blocking(replica.kill)
            await asyncio.sleep(1.0)
            await self.blocking(c.restart, replica)

    # -- report ------------------------------------------------------------------

    def report(self, elapsed: float) -> None:
        lat = sorted(self.latencies[-5000:]) or [0.0]
        resumes = ["%.3f" % r for r in self.resumes]
        print("[%5.0fs] ok=%d errors=%s reads=%s p50=%.1fms p99=%.1fms resumes=%s faults=%s"
              % (elapsed, self.ok, dict(self.errors), dict(self.read_ports),
                 1000 * statistics.median(lat), 1000 * lat[int(len(lat) * 0.99) - 1 if len(lat) > 1 else 0],
                 resumes, dict(self.faults)), flush=True)


def check_primary(cluster: ReplicationCluster, acked: List[int]) -> Dict[str, int]:
    p = cluster.primary
    conn = pymysql.connect(host=p.host, port=p.port, user="root", autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute("SELECT req, COUNT(*) FROM soak.acks GROUP BY req")
        counts = {int(r): int(n) for r, n in cur.fetchall()}
    finally:
        conn.close()
    return {"missing": sum(1 for r in acked if r not in counts),
            "twice": sum(1 for n in counts.values() if n > 1)}


async def run(args: argparse.Namespace, cluster: ReplicationCluster) -> int:
    p = cluster.primary
    conn = pymysql.connect(host=p.host, port=p.port, user="root", autocommit=True)
    conn.cursor().execute("CREATE DATABASE soak")
    conn.cursor().execute("CREATE TABLE soak.acks (id INT AUTO_INCREMENT PRIMARY KEY, req INT NOT NULL)")
    conn.close()
    await asyncio.to_thread(cluster.wait_caught_up)
    rs = ReplicaSet.from_dsn(cluster.multi_host_dsn() + "?connect_timeout=1", max_replica_lag=1.0,
                             lag_check_interval=0.25, size=4, max_size=12, timeout=TIMEOUT)
    await rs.connect()
    soak = Soak(cluster, rs, args.workers)
    tasks = [asyncio.ensure_future(soak.worker()) for _ in range(args.workers)]
    t0 = time.monotonic()
    next_report = next_fault = 10.0
    n = 0
    try:
        while time.monotonic() - t0 < args.seconds:
            await asyncio.sleep(0.1)
            elapsed = time.monotonic() - t0
            if elapsed >= next_fault:
                await soak.fault(n)
                n += 1
                next_fault = time.monotonic() - t0 + random.uniform(4, 8)
            if elapsed >= next_report:
                soak.report(elapsed)
                next_report += 10.0
    finally:
        soak.stop = True
        await asyncio.gather(*tasks)
    soak.report(time.monotonic() - t0)
    await asyncio.to_thread(cluster.wait_caught_up, 30.0)
    data = await asyncio.to_thread(check_primary, cluster, soak.acked)
    await rs.close()
    breaches = {
        "hung": soak.hung, "late": len(soak.late), "untyped": len(soak.untyped),
        "read-your-writes failures": soak.ryw_failures, "acknowledged but missing": data["missing"],
        "inserted twice": data["twice"],
        "resumes over 1 s": sum(1 for r in soak.resumes if r > 1.0),
    }
    print("acknowledged inserts: %d; promotions: %d; resume after promotion: max %.3f s"
          % (len(soak.acked), len(soak.resumes), max(soak.resumes or [0.0])))
    print("breaches:", breaches, soak.untyped[:3])
    return 1 if any(breaches.values()) else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--workers", type=int, default=24)
    ap.add_argument("--replicas", type=int, default=2)
    args = ap.parse_args()
    if args.replicas < 2:
        ap.error("--replicas must be >= 2 (a promoted primary needs a semi-sync replica)")
    with ReplicationCluster(replicas=args.replicas, extra_args=SEMI_SYNC) as cluster:
        return asyncio.run(run(args, cluster))


if __name__ == "__main__":
    sys.exit(main())
