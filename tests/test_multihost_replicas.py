"""ReplicaSet against real replication: reads to replicas within the lag
bound, the primary otherwise, read-your-writes, failover of the primary."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tornpool import Pool
from tornpool.errors import PoolClosed
from tornpool.replicas import ReplicaSet
from tornpool.testing import ReplicationCluster, find_mariadbd

from test_multihost_util import port_of, sql

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(find_mariadbd() is None, reason="no mariadbd binary"),
]


def replica_set(cluster: ReplicationCluster, **kw: Any) -> ReplicaSet:
    kw.setdefault("lag_check_interval", 0.1)
    kw.setdefault("max_size", 3)
    return ReplicaSet.from_dsn(cluster.multi_host_dsn(), **kw)


async def read_port(rs: ReplicaSet) -> int:
    cur = await rs.read("SELECT @@port")
    return int(cur.fetchone()[0])


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in %s s" % timeout
        await asyncio.sleep(0.02)


@pytest.mark.gen_test(timeout=60)
async def test_reads_follow_the_lag_bound(mariadb_replication: ReplicationCluster) -> None:
    """Reads go to the replica; a stopped SQL thread (the server reports no
    lag) moves them to the primary; they come back when it catches up.
    Writes always go to the primary."""
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    async with replica_set(cluster, max_replica_lag=1.0) as rs:
        assert await read_port(rs) == replica.port
        assert await port_of(rs) == primary.port  # execute: the primary
        status = {s["pool"]: s for s in rs.replica_status()}
        assert [s["usable"] for s in status.values()].count(True) == 1
        assert any("read-write" in s["reason"] for s in status.values())  # the primary's host

        await asyncio.to_thread(cluster.stop_sql_thread, replica)
        await rs.check_replicas()
        assert {await read_port(rs) for _ in range(5)} == {primary.port}
        assert any("lag unknown" in s["reason"] for s in rs.replica_status())

        await asyncio.to_thread(cluster.start_sql_thread, replica)
        await asyncio.to_thread(cluster.wait_caught_up)

        async def back() -> bool:
            return await read_port(rs) == replica.port

        await until(back)  # by the background checks alone
        async with rs.acquire(read_only=True) as lease:
            assert await port_of(lease) == replica.port
        async with rs.transaction() as tx:
            assert await port_of(tx) == primary.port


@pytest.mark.slow
@pytest.mark.gen_test(timeout=60)
async def test_delayed_replica_counts_as_lagging(mariadb_replication: ReplicationCluster) -> None:
    """A replica that applies 3 s late reports a growing lag: past the 1 s
    bound its reads go to the primary, and back once it applied."""
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    sql(primary, "CREATE TABLE test.t (id INT PRIMARY KEY)")
    await asyncio.to_thread(cluster.wait_caught_up)
    async with replica_set(cluster, max_replica_lag=1.0) as rs:
        assert await read_port(rs) == replica.port
        await asyncio.to_thread(cluster.set_delay, replica, 3)
        await rs.execute("INSERT INTO test.t VALUES (1)")

        async def lagging() -> bool:
            return await read_port(rs) == primary.port

        await until(lagging, 5.0)

        async def reported_late() -> bool:
            # the server's own figure; for a moment after the write it may
            # still say "unknown" (which already counts as lagging)
            lags = [s["lag"] for s in rs.replica_status() if s["lag"] is not None]
            return bool(lags) and max(lags) > 1.0

        await until(reported_late, 5.0)
        assert await read_port(rs) == primary.port

        async def caught_up() -> bool:
            return await read_port(rs) == replica.port

        await until(caught_up, 8.0)
        cur = await rs.read("SELECT COUNT(*) FROM test.t")
        assert cur.fetchone() == (1,)  # the replica's answer, applied now
        await asyncio.to_thread(cluster.set_delay, replica, 0)


@pytest.mark.gen_test(timeout=60)
async def test_read_your_writes(mariadb_replication: ReplicationCluster) -> None:
    """With no lag bound a stale replica keeps serving reads; a session reads
    its own write anyway, because its first write pinned a primary lease."""
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    sql(primary, "CREATE TABLE test.t (id INT PRIMARY KEY, v INT)")
    sql(primary, "INSERT INTO test.t VALUES (1, 0)")
    await asyncio.to_thread(cluster.wait_caught_up)
    await asyncio.to_thread(cluster.stop_sql_thread, replica)  # stale from now on
    async with replica_set(cluster, max_replica_lag=None) as rs:
        async with rs.session() as s:
            assert (await s.read("SELECT v FROM test.t")).fetchone() == (0,)
            assert not s.pinned
            await s.execute("UPDATE test.t SET v = 1 WHERE id = 1")
            assert s.pinned
            assert (await s.read("SELECT v, @@port FROM test.t")).fetchone() == (1, primary.port)
            async with s.transaction() as tx:
                await tx.execute("UPDATE test.t SET v = 2 WHERE id = 1")
                assert (await tx.execute("SELECT v FROM test.t")).fetchone() == (2,)
            assert (await s.read("SELECT v FROM test.t")).fetchone() == (2,)
        assert not s.pinned
        # outside the session the (stale) replica answers
        assert (await rs.read("SELECT v, @@port FROM test.t")).fetchone() == (0, replica.port)
        stats = rs.primary.stats()
        assert stats["pool_available"] == stats["pool_size"]  # the pinned lease went back


@pytest.mark.gen_test(timeout=60)
async def test_dead_replica_and_primary_failover(mariadb_replication: ReplicationCluster) -> None:
    """A dead replica: reads go to the primary without an error.  Then the
    primary dies and the replica is promoted: writes and reads reach it
    (the primary pool followed; its replica pool no longer counts it)."""
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    async with replica_set(cluster, max_replica_lag=2.0) as rs:
        assert await read_port(rs) == replica.port
        await asyncio.to_thread(replica.kill)  # (the loop sees its connections close)
        assert {await read_port(rs) for _ in range(5)} == {primary.port}  # no error
        await asyncio.to_thread(replica.restart)

        async def back() -> bool:  # the replica pool reconnects with its backoff
            return await read_port(rs) == replica.port

        await until(back, 8.0)

        await asyncio.to_thread(cluster.kill_primary)
        await asyncio.to_thread(cluster.promote, replica)

        async def writes() -> bool:
            try:
                await rs.execute("CREATE TABLE IF NOT EXISTS test.t (id INT)", timeout=0.5)
            except Exception:  # noqa: BLE001 - not yet
                return False
            return True

        await until(writes, 3.0)
        assert await port_of(rs) == replica.port
        await rs.check_replicas()
        assert not any(s["usable"] for s in rs.replica_status())  # nobody replicates now
        assert await read_port(rs) == replica.port  # through the primary pool


@pytest.mark.gen_test(timeout=60)
async def test_lag_query_and_given_pools(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    sql(primary, "CREATE TABLE test.heartbeat (lag DOUBLE)")
    sql(primary, "INSERT INTO test.heartbeat VALUES (0.5)")
    await asyncio.to_thread(cluster.wait_caught_up)
    rs = ReplicaSet(Pool(primary.dsn), [Pool(replica.dsn, fail_fast=True)], max_replica_lag=1.0,
                    lag_check_interval=0.1, lag_query="SELECT lag FROM test.heartbeat")
    await rs.connect()
    assert await read_port(rs) == replica.port
    assert rs.replica_status()[0]["lag"] == 0.5
    sql(primary, "UPDATE test.heartbeat SET lag = 3")
    await asyncio.to_thread(cluster.wait_caught_up)
    await rs.check_replicas()
    assert await read_port(rs) == primary.port
    assert "lag 3 s > 1 s" in rs.replica_status()[0]["reason"]
    sql(primary, "UPDATE test.heartbeat SET lag = NULL")
    await asyncio.to_thread(cluster.wait_caught_up)
    await rs.check_replicas()
    assert "lag unknown" in rs.replica_status()[0]["reason"]
    await rs.close()
    assert rs.closed and rs.primary.closed and all(p.closed for p in rs.replicas)
    with pytest.raises(PoolClosed):
        await rs.read("SELECT 1")


def test_bad_arguments_are_typed() -> None:
    primary = Pool("mysql://u@h/d")
    with pytest.raises(TypeError):
        ReplicaSet(primary, ["mysql://u@h2/d"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        ReplicaSet(primary, [primary])
    with pytest.raises(ValueError):
        ReplicaSet(primary, max_replica_lag=-1)
    with pytest.raises(ValueError):
        ReplicaSet(primary, lag_check_interval=0)
