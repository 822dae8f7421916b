"""Tests of tornpool.testing.ReplicationCluster: real primaries and replicas
on loopback, real GTID replication, real kills -- no mocks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator, List

import pymysql
import pytest

from tornpool.testing import (
    ADMIN_USER,
    MariaDBServer,
    ReplicationCluster,
    ReplicationError,
    ReplicationTimeout,
    find_mariadbd,
    mariadb_replication,  # noqa: F401  (fixture used by name below)
)
from tornpool.testing.replica_status import parse_gtid_pos

pytestmark = [
    pytest.mark.fault,  # every test kills, restarts or reconfigures servers of its own
    pytest.mark.skipif(
        find_mariadbd() is None, reason="no mariadbd binary (apt-get install -y mariadb-server)"
    ),
]

ER_OPTION_PREVENTS_STATEMENT = 1290  # "running with the --read-only option"


def run(server: MariaDBServer, sql: str, *args: Any, **kw: Any) -> Any:
    """One statement over TCP as root (what a DSN user does); returns all rows."""
    conn = pymysql.connect(**server.connect_kwargs(autocommit=True, **kw))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args or None)
            return cur.fetchall()
    finally:
        conn.close()


def ids(server: MariaDBServer) -> List[int]:
    return [row[0] for row in run(server, "SELECT id FROM t ORDER BY id")]


def make_table(cluster: ReplicationCluster, *rows: int) -> None:
    run(cluster.primary, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
    for i in rows:
        run(cluster.primary, "INSERT INTO t VALUES (%s)", i)
    cluster.wait_caught_up()


def assert_read_only(server: MariaDBServer) -> None:
    assert run(server, "SELECT @@read_only") == ((1,),)
    for kw in ({}, {"unix_socket": True}):  # root over TCP and over the socket
        with pytest.raises(pymysql.err.OperationalError) as info:
            run(server, "INSERT INTO t VALUES (999)", **kw)
        assert info.value.args[0] == ER_OPTION_PREVENTS_STATEMENT


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Servers started in the test get their directories under a directory of
    the test's own, so the test can see what is left behind."""
    MariaDBServer().start().stop()  # build the process's template outside it
    path = Path(tempfile.mkdtemp(prefix="tprepl-", dir="/tmp"))  # short: unix socket paths
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    try:
        yield path
    finally:
        monkeypatch.undo()
        shutil.rmtree(path, ignore_errors=True)


# -- replication -----------------------------------------------------------


def test_rows_replicate_to_a_read_only_replica(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, (replica,) = cluster.primary, cluster.replicas
    assert cluster.servers == [primary, replica]
    assert cluster.dsn_list == [primary.dsn, replica.dsn]
    assert cluster.multi_host_dsn() == (
        f"mysql://root@127.0.0.1:{primary.port},127.0.0.1:{replica.port}/test"
    )
    assert run(primary, "SELECT @@read_only, @@log_bin, @@gtid_strict_mode") == ((0, 1, 1),)
    assert run(primary, "SELECT @@server_id")[0][0] != run(replica, "SELECT @@server_id")[0][0]

    make_table(cluster, 1, 2, 3)
    assert ids(replica) == [1, 2, 3]
    st = cluster.status(replica)
    assert st.io_running and st.sql_running and st.streaming and not st.broken
    assert st.source_port == primary.port
    assert st.gtid_slave_pos == run(primary, "SELECT @@gtid_binlog_pos")[0][0]
    assert cluster.lag(replica) == 0 and cluster.transactions_behind(replica) == 0

    assert_read_only(replica)
    run(primary, "INSERT INTO t VALUES (4)")  # the primary still takes writes
    cluster.wait_caught_up()
    assert ids(replica) == [1, 2, 3, 4]


@pytest.mark.parametrize("mariadb_replication", [2], indirect=True)
def test_two_replicas_follow_a_promoted_one(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    old = cluster.primary
    first, second = cluster.replicas
    make_table(cluster, 1)
    assert ids(first) == ids(second) == [1]

    cluster.kill_primary()
    assert cluster.promote(first) is first
    assert cluster.primary is first and cluster.replicas == [second]
    assert cluster.status(second).source_port == first.port
    assert old not in cluster.replicas and old in cluster.servers
    run(first, "INSERT INTO t VALUES (2)")
    cluster.wait_caught_up()
    assert ids(second) == [1, 2]
    assert_read_only(second)


# -- lag on demand ---------------------------------------------------------


def test_stopped_sql_thread_holds_rows_back(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, (replica,) = cluster.primary, cluster.replicas
    make_table(cluster, 1)

    cluster.stop_sql_thread(replica)
    run(primary, "INSERT INTO t VALUES (2)")
    run(primary, "INSERT INTO t VALUES (3)")
    target = run(primary, "SELECT @@gtid_binlog_pos")[0][0]
    deadline = time.monotonic() + 5
    while cluster.status(replica).gtid_io_pos != target:  # received, not applied
        assert time.monotonic() < deadline, cluster.status(replica)
        time.sleep(0.01)
    st = cluster.status(replica)
    assert st.io_running and not st.sql_running and not st.broken
    assert st.seconds_behind_master is None and cluster.lag(replica) is None
    assert cluster.transactions_behind(replica) == 2
    assert ids(replica) == [1]
    with pytest.raises(ReplicationTimeout, match="sql=No"):
        cluster.wait_caught_up(timeout=0.3)

    cluster.start_sql_thread(replica)
    cluster.wait_caught_up()
    assert ids(replica) == [1, 2, 3]
    assert cluster.lag(replica) == 0 and cluster.transactions_behind(replica) == 0


def test_delayed_replica_reports_seconds_behind(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, (replica,) = cluster.primary, cluster.replicas
    make_table(cluster, 1)

    cluster.set_delay(replica, 2)
    assert cluster.status(replica).sql_delay == 2
    run(primary, "INSERT INTO t VALUES (2)")
    deadline = time.monotonic() + 5
    seen = []
    while not seen or seen[-1] is None or seen[-1] < 1:
        assert time.monotonic() < deadline, seen
        seen.append(cluster.lag(replica))
        time.sleep(0.05)
    assert ids(replica) == [1]  # still held back while the server reports the lag
    assert cluster.transactions_behind(replica) == 1
    cluster.wait_caught_up(timeout=5)
    assert ids(replica) == [1, 2]
    assert cluster.lag(replica) == 0

    cluster.set_delay(replica, 0)
    assert cluster.status(replica).sql_delay == 0


# -- failover and switch-back ----------------------------------------------


def test_kill_primary_promote_then_switch_back(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    old, (replica,) = cluster.primary, cluster.replicas
    make_table(cluster, 1, 2)

    assert cluster.kill_primary() is old
    assert not old.running and refuses(old.port)
    assert cluster.primary is old  # until promote()
    new = cluster.promote(replica)
    assert new is replica and cluster.primary is replica and cluster.replicas == []
    assert cluster.multi_host_dsn() == f"mysql://root@127.0.0.1:{replica.port}/test"
    assert run(new, "SELECT @@read_only") == ((0,),)
    run(new, "INSERT INTO t VALUES (3)")
    assert ids(new) == [1, 2, 3]

    cluster.demote(old, new)  # starts the killed server read-only, catches it up
    assert cluster.replicas == [old] and old.running
    assert ids(old) == [1, 2, 3]
    assert_read_only(old)

    assert cluster.switchover(old) is old
    assert cluster.primary is old and cluster.replicas == [replica]
    run(old, "INSERT INTO t VALUES (4)")
    cluster.wait_caught_up()
    assert ids(replica) == [1, 2, 3, 4]
    assert_read_only(replica)


def test_diverged_old_primary_is_rebuilt(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    old, (replica,) = cluster.primary, cluster.replicas
    make_table(cluster, 1)
    conn = pymysql.connect(**cluster.admin_kwargs(replica))
    try:
        with conn.cursor() as cur:
            cur.execute("STOP SLAVE IO_THREAD")  # row 2 will never reach the replica
    finally:
        conn.close()
    run(old, "INSERT INTO t VALUES (2)")
    cluster.kill_primary()
    cluster.promote(replica)
    run(replica, "INSERT INTO t VALUES (3)")

    with pytest.raises(ReplicationError, match="1236"):
        cluster.demote(old, replica)  # it holds a transaction the new primary lacks
    assert old not in cluster.replicas

    cluster.demote(old, replica, rebuild=True)
    assert cluster.replicas == [old]
    assert ids(old) == [1, 3]
    assert_read_only(old)


def test_restart_keeps_roles_and_catches_up(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, (replica,) = cluster.primary, cluster.replicas
    make_table(cluster, 1)

    replica.kill()
    run(primary, "INSERT INTO t VALUES (2)")
    assert cluster.restart(replica) is replica
    cluster.wait_caught_up()
    assert ids(replica) == [1, 2]
    assert_read_only(replica)

    cluster.kill_primary()
    cluster.restart(primary)  # not promoted: same primary, same data
    assert run(primary, "SELECT @@read_only") == ((0,),)
    run(primary, "INSERT INTO t VALUES (3)")
    cluster.wait_caught_up(timeout=10)
    assert ids(replica) == [1, 2, 3]


# -- misuse ----------------------------------------------------------------


def test_bad_arguments(mariadb_replication: ReplicationCluster) -> None:
    cluster = mariadb_replication
    primary, (replica,) = cluster.primary, cluster.replicas
    with pytest.raises(ValueError):
        ReplicationCluster(replicas=0)
    with pytest.raises(ValueError, match="not a replica"):
        cluster.lag(primary)
    with pytest.raises(ValueError, match="not a replica"):
        cluster.promote(primary)
    with pytest.raises(ValueError, match="not the primary"):
        cluster.demote(primary, replica)
    with pytest.raises(ValueError, match="itself"):
        cluster.demote(primary, primary)
    with pytest.raises(ValueError, match="int >= 0"):
        cluster.set_delay(replica, -1)
    stranger = MariaDBServer()
    with pytest.raises(ValueError, match="not a member"):
        cluster.restart(stranger)
    with pytest.raises(RuntimeError, match="not started"):
        ReplicationCluster().primary
    admin = cluster.admin_kwargs(replica)
    assert admin["user"] == ADMIN_USER and admin["unix_socket"] == replica.unix_socket


def test_parse_gtid_pos() -> None:
    assert parse_gtid_pos("") == {}
    assert parse_gtid_pos("0-1-42,1-3-7") == {0: 42, 1: 7}
    with pytest.raises(ValueError):
        parse_gtid_pos("0-1")


# -- clean-up --------------------------------------------------------------


def test_close_after_a_failure_midway() -> None:
    cluster = ReplicationCluster(replicas=2)
    with pytest.raises(ZeroDivisionError):
        with cluster:
            pids = [s.pid for s in cluster.servers]
            dirs = [os.path.dirname(s.datadir) for s in cluster.servers]
            ports = [s.port for s in cluster.servers]
            1 / 0
    assert len(pids) == 3 and all(pid is not None and gone(pid) for pid in pids)
    assert not any(os.path.exists(d) for d in dirs)
    assert all(refuses(p) for p in ports)
    assert cluster.servers == []
    cluster.close()  # idempotent


def test_failed_start_leaves_nothing(private_tmp: Path) -> None:
    # A later --skip-log-bin wins over the cluster's --log-bin: the primary has
    # no binary log to send, and start() must say so and clean up.
    cluster = ReplicationCluster(extra_args=["--skip-log-bin"])
    with pytest.raises(ReplicationError, match="1236"):
        cluster.start()
    assert cluster.servers == []
    assert list(private_tmp.iterdir()) == []


def test_fixture_cleans_up_after_a_failing_test(tmp_path: Path) -> None:
    (tmp_path / "test_child.py").write_text(textwrap.dedent("""
        import json, os, pathlib
        STATE = pathlib.Path(__file__).with_name("state.json")

        def test_fails_midway(mariadb_replication):
            servers = mariadb_replication.servers
            STATE.write_text(json.dumps({
                "pids": [s.pid for s in servers],
                "dirs": [os.path.dirname(s.datadir) for s in servers],
            }))
            assert False, "deliberate failure"

        def test_then_nothing_is_left():
            state = json.loads(STATE.read_text())
            assert len(state["pids"]) == 2
            for pid in state["pids"]:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                raise AssertionError(f"mariadbd {pid} still runs")
            assert not [d for d in state["dirs"] if os.path.exists(d)]
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tornpool.testing", "-p", "no:cacheprovider",
         "-q", "test_child.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "deliberate failure" in proc.stdout
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout
