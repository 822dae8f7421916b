"""Host lists against real replication: every target_session_attrs reads the
role from the server, load balancing, per-host connect timeouts, typed
failures."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tornpool import Pool
from tornpool.dsn import HostSpec
from tornpool.errors import ConnectTimeout, OperationalError, PoolTimeout
from tornpool.hosts import HostList, NoSuitableServer, connect_target
from tornpool.pool.failover import FailoverConnection, reap_on_same_server
from tornpool.roles import ServerRole, read_role
from tornpool.testing import FaultProxy, ReplicationCluster, find_mariadbd

from test_multihost_util import port_of, sql

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(find_mariadbd() is None, reason="no mariadbd binary"),
]


def hosts_of(*servers: Any) -> str:
    return ",".join("%s:%d" % (s.host, s.port) for s in servers)


async def target_port(cluster: ReplicationCluster, order: list[Any], target: str, **kw: Any) -> int:
    conn = await connect_target("mysql://root@%s/test" % hosts_of(*order),
                                target_session_attrs=target, **kw)
    try:
        return await port_of(conn)
    finally:
        await conn.close()


@pytest.mark.parametrize("mariadb_replication", [2], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_every_target_reads_the_role_from_the_server(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, r1, r2 = cluster.primary, *cluster.replicas
    # The list starts with a replica: the role, not the place, decides.
    order = [r1, primary, r2]
    assert await target_port(cluster, order, "any") == r1.port
    assert await target_port(cluster, order, "read-write") == primary.port
    assert await target_port(cluster, order, "primary") == primary.port
    assert await target_port(cluster, order, "read-only") == r1.port
    assert await target_port(cluster, [primary, r2, r1], "standby") == r2.port
    assert await target_port(cluster, [primary, r2, r1], "prefer-standby") == r2.port
    # the DSN's own parameter counts when no argument overrides it
    conn = await connect_target("mysql://root@%s/test?target_session_attrs=read-write"
                                % hosts_of(*order))
    assert await port_of(conn) == primary.port
    await conn.close()
    conn = await connect_target(primary.dsn)  # one host: connected as it is
    assert await port_of(conn) == primary.port
    await conn.close()

    # The same checks as an account that may not read the replication
    # status: primary/standby fall back to read_only.
    sql(primary, "CREATE USER app@'127.0.0.1' IDENTIFIED BY 'pw'")
    sql(primary, "GRANT SELECT, INSERT ON test.* TO app@'127.0.0.1'")
    cluster.wait_caught_up()
    conn = await connect_target("mysql://app:pw@%s/test" % hosts_of(primary), target_session_attrs="any")
    role = await read_role(conn, replication=True)
    await conn.close()
    assert role == ServerRole(read_only=False, replica=None)
    for target, want in (("primary", primary), ("standby", r1)):
        got = await target_port(cluster, [r1, primary], target, user="app", password="pw")
        assert got == want.port

    # Roles follow the servers: after a switchover the targets swap.
    cluster.switchover(r1)
    assert await target_port(cluster, order, "read-write") == r1.port
    assert await target_port(cluster, [r1, primary, r2], "standby") == primary.port


@pytest.mark.gen_test(timeout=60)
async def test_prefer_standby_falls_back_and_unsuitable_lists_fail_typed(
        mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    replica.kill()
    assert await target_port(cluster, [replica, primary], "prefer-standby") == primary.port

    with pytest.raises(NoSuitableServer) as info:
        await connect_target("mysql://root@%s/test" % hosts_of(replica, primary),
                             target_session_attrs="standby")
    err = info.value
    assert isinstance(err, OperationalError) and err.args[0] == 2003
    assert [h for h, _ in err.attempts] == [HostSpec(replica.host, replica.port),
                                            HostSpec(primary.host, primary.port)]
    assert "Can't connect" in err.attempts[0][1] and "read-write" in err.attempts[1][1]
    assert isinstance(err.__cause__, OperationalError)

    # Bad credentials everywhere: that error, which retrying cannot fix.
    with pytest.raises(OperationalError) as bad:
        await connect_target("mysql://root:wrong@%s/test" % hosts_of(primary, primary),
                             target_session_attrs="read-write")
    assert bad.value.args[0] == 1045 and not isinstance(bad.value, NoSuitableServer)
    pool = Pool("mysql://root:wrong@%s/test" % hosts_of(primary, primary), timeout=2)
    with pytest.raises(OperationalError) as bad:
        await pool.connect()
    assert bad.value.args[0] == 1045

    # A pool waiting for a primary that does not come: PoolTimeout at its
    # deadline, with the host list's failure chained.
    pool = Pool("mysql://root@%s/test?target_session_attrs=read-only" % hosts_of(primary),
                size=0, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout) as timeout:
        await pool.execute("SELECT 1")
    assert time.monotonic() - t0 < 2.0
    assert isinstance(timeout.value.__cause__, NoSuitableServer)
    await pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_connect_timeout_per_host_and_unreachable_hosts_last(
        mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    with FaultProxy.for_server(primary) as proxy:
        proxy.blackhole()  # accepts, then never answers: only the timeout ends it
        stuck = HostSpec("127.0.0.1", proxy.port)
        hosts = HostList([stuck, HostSpec(replica.host, replica.port)],
                         {"user": "root", "database": "test", "connect_timeout": 0.4},
                         target_session_attrs="read-write")
        t0 = time.monotonic()
        with pytest.raises(NoSuitableServer) as info:
            await hosts.connect()
        took = time.monotonic() - t0
        assert took < 3.0  # each host had its 0.4 s, not the default 10 s
        assert isinstance(info.value.__cause__, ConnectTimeout)
        assert "ConnectTimeout" in info.value.attempts[0][1]
        assert "read-only" in info.value.attempts[1][1]
        # the host that timed out is tried last from now on
        assert hosts.order() == [HostSpec(replica.host, replica.port), stuck]

        # A pool whose first host hangs still gets the primary behind it.
        pool = Pool(hosts="127.0.0.1:%d,%s" % (proxy.port, hosts_of(primary)), user="root",
                    database="test", connect_timeout=0.4, target_session_attrs="read-write",
                    size=2)
        await pool.connect()
        assert await port_of(pool) == primary.port
        lease = await pool.acquire()
        assert isinstance(lease, FailoverConnection)
        lease.release()
        await pool.close()


@pytest.mark.parametrize("mariadb_replication", [2], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_load_balance_hosts_spreads_connections(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    servers = [cluster.primary, *cluster.replicas]
    dsn = "mysql://root@%s/test" % hosts_of(*servers)
    in_order = {await target_port(cluster, servers, "any") for _ in range(6)}
    assert in_order == {servers[0].port}
    spread = set()
    for _ in range(30):
        conn = await connect_target(dsn + "?load_balance_hosts=random")
        spread.add(await port_of(conn))
        await conn.close()
    assert len(spread) >= 2  # all 30 on one of 3 servers: p = 3 * 3**-30
    assert spread <= {s.port for s in servers}


@pytest.mark.gen_test(timeout=60)
async def test_reaping_never_kills_on_another_server(mariadb_replication: ReplicationCluster) -> None:
    """A connection abandoned on the old primary is not KILLed by its thread
    id through a connection to another server (where that id may be
    somebody else's)."""
    cluster = mariadb_replication
    primary, replica = cluster.primary, cluster.replicas[0]
    hosts = HostList([HostSpec(primary.host, primary.port), HostSpec(replica.host, replica.port)],
                     {"user": "root", "database": "test"})
    on_primary = await hosts.connect()
    cluster.kill_primary()
    on_replica = await hosts.connect()
    assert hosts.host_of(on_primary) == hosts.hosts[0]
    assert hosts.host_of(on_replica) == hosts.hosts[1]
    calls: list[tuple[Any, Any, bool]] = []

    async def reap(dead: Any, live: Any, kill: bool) -> bool:
        calls.append((dead, live, kill))
        return False

    assert await reap_on_same_server(hosts, reap, on_primary, on_replica, True) is True
    assert calls == []
    assert await reap_on_same_server(hosts, reap, on_replica, on_replica, True) is False
    assert calls == [(on_replica, on_replica, True)]
    on_primary.terminate()
    await on_replica.close()


@pytest.mark.gen_test(timeout=60)
async def test_proxy_settings_over_a_list_of_proxy_endpoints(throwaway_mariadb: Any) -> None:
    """The settings docs/multihost.md gives for ProxySQL (no session tracking,
    a reset after every lease, target any) over two endpoints standing in for
    two proxy instances: a refused endpoint is skipped, nothing leaks between
    leases without a reconnect per lease, and losing every link to one
    endpoint moves the pool to the other."""
    srv = throwaway_mariadb
    with FaultProxy.for_server(srv) as first, FaultProxy.for_server(srv) as second:
        first.refuse()
        pool = Pool(hosts="127.0.0.1:%d,127.0.0.1:%d" % (first.port, second.port), user="root",
                    database="test", connect_timeout=1, session_track=False,
                    session_reset="always", size=1, max_size=1)
        await pool.connect()
        assert second.connections == 1 and first.accepted == 0
        for i in range(5):
            async with pool.acquire() as conn:
                assert (await conn.execute("SELECT @x")).fetchone() == (None,)
                await conn.execute("SET @x = %s", (i,))
        assert pool.stats()["connections_num"] == 1  # reset in place, not reconnected
        first.accept_again()
        second.refuse()
        second.reset_all()
        await until_ok(pool)
        assert first.connections == 1
        async with pool.acquire() as conn:
            assert (await conn.execute("SELECT @x")).fetchone() == (None,)
        await pool.close()


async def until_ok(pool: Pool, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await pool.execute("SELECT 1", timeout=1.0)
            return
        except (OperationalError, PoolTimeout):
            assert time.monotonic() < deadline
