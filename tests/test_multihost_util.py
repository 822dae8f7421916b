"""Helpers shared by the multi-host tests (no tests here): blocking admin
statements on cluster members, semi-synchronous replication, a write load
that logs what was acknowledged."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pymysql

from tornpool.errors import MySQLError
from tornpool.testing import MariaDBServer, ReplicationCluster


def sql(server: MariaDBServer, statement: str, *args: Any, cluster: ReplicationCluster | None = None) -> Any:
    """One statement on ``server`` (as root over TCP, or as the cluster's
    admin over the socket when ``cluster`` is given); returns all rows."""
    kwargs = cluster.admin_kwargs(server) if cluster is not None else server.connect_kwargs(autocommit=True)
    conn = pymysql.connect(**kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args or None)
            return cur.fetchall()
    finally:
        conn.close()


def semi_sync(cluster: ReplicationCluster) -> None:
    """Semi-synchronous replication (AFTER_SYNC) from the primary to every
    replica: a commit is acknowledged only once a replica received it, so a
    promoted replica has every acknowledged commit after ``promote()``
    applies what it received."""
    primary = cluster.primary
    sql(primary, "SET GLOBAL rpl_semi_sync_master_wait_point='AFTER_SYNC'", cluster=cluster)
    sql(primary, "SET GLOBAL rpl_semi_sync_master_enabled=ON", cluster=cluster)
    for replica in cluster.replicas:
        sql(replica, "SET GLOBAL rpl_semi_sync_slave_enabled=ON", cluster=cluster)
        sql(replica, "STOP SLAVE IO_THREAD", cluster=cluster)
        sql(replica, "START SLAVE IO_THREAD", cluster=cluster)
    deadline = time.monotonic() + 10
    while True:
        rows = dict(sql(primary, "SHOW STATUS LIKE 'Rpl_semi_sync_master_%'", cluster=cluster))
        if rows["Rpl_semi_sync_master_status"] == "ON" and \
                int(rows["Rpl_semi_sync_master_clients"]) == len(cluster.replicas):
            return
        assert time.monotonic() < deadline, rows
        time.sleep(0.02)


async def port_of(executor: Any) -> int:
    """The port of the server a pool (or lease) runs a statement on."""
    cur = await executor.execute("SELECT @@port")
    return int(cur.fetchone()[0])


@dataclass
class WriteLoad:
    """``workers`` coroutines inserting numbered rows through ``execute``
    until stopped; every outcome is logged with its time."""

    execute: Callable[..., Any]
    workers: int = 16
    timeout: float = 1.5
    acked: list[int] = field(default_factory=list)
    #: (monotonic time of the reply, request id) of every acknowledged insert
    ok_at: list[tuple[float, int]] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    untyped: list[BaseException] = field(default_factory=list)
    hung: int = 0
    late: list[float] = field(default_factory=list)
    _next: int = 0
    _stop: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)

    async def _worker(self) -> None:
        while not self._stop:
            self._next += 1
            req = self._next
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(
                    self.execute("INSERT INTO acks (req) VALUES (%s)", (req,), timeout=self.timeout),
                    self.timeout + 2.0)
            except MySQLError as exc:  # (PoolTimeout and CommandTimeout are TimeoutErrors too)
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)
            except asyncio.TimeoutError:
                self.hung += 1  # the pool's own deadline did not fire
            except Exception as exc:  # noqa: BLE001 - collected and asserted on
                self.untyped.append(exc)
            else:
                self.acked.append(req)
                self.ok_at.append((time.monotonic(), req))
            took = time.monotonic() - t0
            if took > self.timeout + 0.5:
                self.late.append(took)

    def first_ok_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first acknowledged insert after it."""
        after = [t for t, _ in self.ok_at if t >= moment]
        return min(after) - moment if after else None


def check_acknowledged(server: MariaDBServer, acked: list[int]) -> None:
    """Every acknowledged request is on ``server``, and none twice (no
    statement was run twice)."""
    rows = sql(server, "SELECT req, COUNT(*) FROM test.acks GROUP BY req")
    counts = {int(req): int(n) for req, n in rows}
    missing = [r for r in acked if r not in counts]
    assert not missing, "acknowledged but missing on %r: %s" % (server, missing[:20])
    twice = {r: n for r, n in counts.items() if n > 1}
    assert not twice, "inserted more than once: %s" % twice
