"""Failover of a read-write pool over real replication: kill -9 under load
and promotion, a planned switchover, a primary that turns read-only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tornpool import Pool
from tornpool.errors import OperationalError, PoolTimeout
from tornpool.hosts import NoSuitableServer
from tornpool.testing import ReplicationCluster, find_mariadbd

from test_multihost_util import WriteLoad, check_acknowledged, port_of, semi_sync, sql

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(find_mariadbd() is None, reason="no mariadbd binary"),
]

# The typed outcomes a write may have while its primary dies or steps down.
EXPECTED_ERRORS = {"PoolTimeout", "ConnectionLost", "OperationalError", "CommandTimeout"}


def make_acks(cluster: ReplicationCluster) -> None:
    sql(cluster.primary, "CREATE TABLE test.acks (id INT AUTO_INCREMENT PRIMARY KEY, req INT NOT NULL)")
    cluster.wait_caught_up()


def rw_pool(cluster: ReplicationCluster, **kw: Any) -> Pool:
    dsn = cluster.multi_host_dsn() + "?target_session_attrs=read-write&connect_timeout=1"
    kw.setdefault("size", 4)
    kw.setdefault("max_size", 8)
    return Pool(dsn, **kw)


@pytest.mark.gen_test(timeout=90)
async def test_kill_primary_under_load_then_promote(mariadb_replication: ReplicationCluster) -> None:
    """The issue's proof: kill -9 the primary under load, promote the replica;
    writes resume within 1 s of the promotion with the same pool; no request
    hangs or outlives its timeout; every failure is typed; every
    acknowledged insert is on the new primary, none twice."""
    cluster = mariadb_replication
    make_acks(cluster)
    semi_sync(cluster)  # without it an acknowledged commit may never reach the replica
    replica = cluster.replicas[0]
    pool = rw_pool(cluster, timeout=1.0)
    await pool.connect()
    load = WriteLoad(pool.execute, workers=16, timeout=1.0)
    load.start()
    await asyncio.sleep(0.6)
    before = len(load.acked)
    await asyncio.to_thread(cluster.kill_primary)
    await asyncio.sleep(0.5)  # the outage: no primary at all
    await asyncio.to_thread(cluster.promote, replica)
    promoted = time.monotonic()
    await asyncio.sleep(1.5)
    await load.stop()

    assert before > 20, "the load did not run before the kill"
    resumed = load.first_ok_after(promoted)
    assert resumed is not None and resumed < 1.0, "writes resumed %s s after the promotion" % resumed
    assert load.hung == 0 and not load.late and not load.untyped
    assert set(load.errors) <= EXPECTED_ERRORS, load.errors
    assert sum(load.errors.values()) > 0  # the kill was felt
    assert await port_of(pool) == replica.port
    check_acknowledged(replica, load.acked)
    await pool.close()


@pytest.mark.gen_test(timeout=90)
async def test_switchover_drains_the_demoted_primary(mariadb_replication: ReplicationCluster) -> None:
    """A planned switchover under load: the old primary turns read-only (the
    pool sees 1290 and drains), the new one takes the writes; nothing
    acknowledged is lost, nothing runs twice, and no connection is left on
    the old primary."""
    cluster = mariadb_replication
    make_acks(cluster)
    old, new = cluster.primary, cluster.replicas[0]
    pool = rw_pool(cluster, timeout=2.0)
    await pool.connect()
    load = WriteLoad(pool.execute, workers=8, timeout=2.0)
    load.start()
    await asyncio.sleep(0.4)
    await asyncio.to_thread(cluster.switchover, new)
    switched = time.monotonic()
    await asyncio.sleep(1.0)
    await load.stop()

    resumed = load.first_ok_after(switched)
    assert resumed is not None and resumed < 1.0
    assert load.hung == 0 and not load.late and not load.untyped
    assert set(load.errors) <= EXPECTED_ERRORS, load.errors
    await asyncio.to_thread(cluster.wait_caught_up)
    check_acknowledged(new, load.acked)
    check_acknowledged(old, load.acked)  # (now a replica of the new primary)
    ports = {await port_of(pool) for _ in range(pool.max_size * 2)}
    assert ports == {new.port}
    await pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_read_only_seen_on_a_fresh_connection_drains(mariadb_replication: ReplicationCluster) -> None:
    """No write hit the demoted primary: a new connection that finds it
    read-only is enough for the pool to replace the connections it holds
    there, so no later write gets 1290."""
    cluster = mariadb_replication
    make_acks(cluster)
    old, new = cluster.primary, cluster.replicas[0]
    pool = rw_pool(cluster, size=2, max_size=3, timeout=5.0)
    await pool.connect()
    assert await port_of(pool) == old.port
    await asyncio.to_thread(cluster.switchover, new)
    held = [await pool.acquire(), await pool.acquire()]
    assert {await port_of(lease) for lease in held} == {old.port}  # opened before
    fresh = await pool.acquire()  # a new connection: old is read-only now
    assert await port_of(fresh) == new.port
    for lease in (*held, fresh):
        lease.release()
    for i in range(10):
        await pool.execute("INSERT INTO test.acks (req) VALUES (%s)", (i,))
    assert {await port_of(pool) for _ in range(6)} == {new.port}
    await pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_read_only_primary_fails_writes_typed_and_is_left(mariadb_replication: ReplicationCluster) -> None:
    """The primary alone turns read-only (no other writable server yet): the
    write fails with the server's 1290 (typed, not retried), the pool drains,
    finds no writable server (waiters time out typed), and takes the
    promoted replica as soon as there is one -- without a restart."""
    cluster = mariadb_replication
    make_acks(cluster)
    old, replica = cluster.primary, cluster.replicas[0]
    pool = rw_pool(cluster, size=2, timeout=0.8)
    await pool.connect()
    sql(old, "SET GLOBAL read_only=ON", cluster=cluster)
    hosts = pool.hosts
    assert hosts is not None
    async with pool.acquire() as lease:  # a lease's own statements are watched too
        with pytest.raises(OperationalError) as info:
            await lease.executemany("INSERT INTO test.acks (req) VALUES (%s)", [(1,), (2,)])
        assert info.value.args[0] == 1290
        assert hosts.role_lost(lease.connection)
    assert sql(old, "SELECT COUNT(*) FROM test.acks") == ((0,),)
    with pytest.raises(PoolTimeout) as later:
        await pool.execute("INSERT INTO test.acks (req) VALUES (2)")
    assert isinstance(later.value.__cause__, NoSuitableServer)
    await asyncio.to_thread(cluster.promote, replica)
    await pool.execute("INSERT INTO test.acks (req) VALUES (3)", timeout=2.0)
    assert await port_of(pool) == replica.port
    assert sql(replica, "SELECT req FROM test.acks") == ((3,),)
    await pool.close()
