"""Tests of tornpool.testing: real throwaway servers and a real proxy, no mocks."""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Iterator

import pymysql
import pytest

from tornpool.testing import (
    FaultProxy,
    MariaDBNotFound,
    MariaDBServer,
    find_mariadbd,
    mariadb_dsn,  # noqa: F401  (fixtures used by name below)
    test_dsn,
    throwaway_mariadb,  # noqa: F401
    tls_mariadb,  # noqa: F401
)

pytestmark = pytest.mark.skipif(
    find_mariadbd() is None, reason="no mariadbd binary (apt-get install -y mariadb-server)"
)


def query(conn: pymysql.connections.Connection, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDBServer]:
    """One throwaway server for the proxy tests of this module."""
    with MariaDBServer() as srv:
        yield srv


@pytest.fixture
def proxy(server: MariaDBServer) -> Iterator[FaultProxy]:
    with FaultProxy.for_server(server) as p:
        yield p


def connect_via(server: MariaDBServer, proxy: FaultProxy, **kw: Any) -> pymysql.connections.Connection:
    return pymysql.connect(**server.connect_kwargs(host=proxy.host, port=proxy.port, **kw))


# -- MariaDBServer -----------------------------------------------------------


def test_start_query_stop() -> None:
    srv = MariaDBServer()
    with srv:
        assert srv.running and srv.pid
        assert srv.dsn == f"mysql://root@127.0.0.1:{srv.port}/test"
        basedir = os.path.dirname(srv.datadir)
        conn = pymysql.connect(**srv.connect_kwargs())
        try:
            assert query(conn, "SELECT 1 + 1, DATABASE()") == ((2, "test"),)
        finally:
            conn.close()
    assert not srv.running and srv.pid is None
    assert not os.path.exists(basedir)
    srv.stop()  # idempotent


def test_unix_socket(server: MariaDBServer) -> None:
    conn = pymysql.connect(**server.connect_kwargs(unix_socket=True))
    try:
        assert query(conn, "SELECT @@socket") == ((server.unix_socket,),)
    finally:
        conn.close()


def test_kill_and_restart_keep_port_and_data(throwaway_mariadb: MariaDBServer) -> None:
    srv = throwaway_mariadb
    port = srv.port
    conn = pymysql.connect(**srv.connect_kwargs(autocommit=True))
    query(conn, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
    query(conn, "INSERT INTO t VALUES (1, 'kept'), (2, 'also kept')")

    srv.kill()
    assert srv.pid is None
    with pytest.raises(pymysql.err.OperationalError):
        query(conn, "SELECT 1")
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    srv.restart()
    assert srv.port == port and srv.running
    conn = pymysql.connect(**srv.connect_kwargs())
    try:
        assert query(conn, "SELECT v FROM t ORDER BY id") == (("kept",), ("also kept",))
    finally:
        conn.close()


def test_graceful_restart(throwaway_mariadb: MariaDBServer) -> None:
    old_pid = throwaway_mariadb.pid
    throwaway_mariadb.restart()
    assert throwaway_mariadb.pid not in (None, old_pid)
    conn = pymysql.connect(**throwaway_mariadb.connect_kwargs())
    conn.close()


def test_tls(tls_mariadb: MariaDBServer) -> None:
    srv = tls_mariadb
    assert srv.ssl_ca and os.path.exists(srv.ssl_ca)
    base = dict(host=srv.host, port=srv.port, user="root", password="", database="test")
    # Note: PyMySQL 1.2 rebuilds its ssl settings from the ssl_* arguments
    # whenever one is given, so ssl={"ca": ...} together with
    # ssl_verify_cert=True loses the CA.  Use one form or the other.
    for kw in (
        {"ssl": {"ca": srv.ssl_ca}},  # a CA in the dict means verify cert + host name
        {"ssl_ca": srv.ssl_ca, "ssl_verify_cert": True},
        srv.connect_kwargs(ssl_verify_identity=True),
    ):
        conn = pymysql.connect(**{**base, **kw})
        try:
            ((_, cipher),) = query(conn, "SHOW STATUS LIKE 'Ssl_cipher'")
            assert cipher
        finally:
            conn.close()
    # Verification is real: without our CA the certificate is rejected.
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        pymysql.connect(**base, ssl_verify_cert=True)


def test_missing_binary_message() -> None:
    with pytest.raises(MariaDBNotFound) as info:
        MariaDBServer(mariadbd="/nonexistent/mariadbd").start()
    msg = str(info.value)
    assert "apt-get install -y mariadb-server" in msg and "TORNPOOL_TEST_DSN" in msg


def test_mariadb_dsn_fixture(mariadb_dsn: str) -> None:
    assert mariadb_dsn == test_dsn()
    assert mariadb_dsn.startswith("mysql://")


# -- FaultProxy --------------------------------------------------------------


def test_proxy_rejects_non_loopback_target() -> None:
    with pytest.raises(ValueError):
        FaultProxy("192.0.2.1", 3306)


def test_dsn_for(proxy: FaultProxy) -> None:
    assert proxy.dsn_for("mysql://u:p@db.example:3306/app?charset=utf8mb4") == (
        f"mysql://u:p@127.0.0.1:{proxy.port}/app?charset=utf8mb4"
    )


def test_pass_through(server: MariaDBServer, proxy: FaultProxy) -> None:
    conn = connect_via(server, proxy)
    try:
        assert proxy.connections == 1
        assert query(conn, "SELECT 42") == ((42,),)
    finally:
        conn.close()
    deadline = time.monotonic() + 5
    while proxy.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.connections == 0


def test_delay_adds_latency(server: MariaDBServer, proxy: FaultProxy) -> None:
    conn = connect_via(server, proxy)
    try:
        t0 = time.monotonic()
        query(conn, "SELECT 1")
        base = time.monotonic() - t0
        proxy.delay(0.25)
        t0 = time.monotonic()
        query(conn, "SELECT 1")
        delayed = time.monotonic() - t0
        proxy.pass_through()
        query(conn, "SELECT 1")
    finally:
        conn.close()
    # One round trip = one delayed chunk each way.
    assert delayed >= 0.45
    assert delayed < base + 5


def test_blackhole_times_out(server: MariaDBServer, proxy: FaultProxy) -> None:
    conn = connect_via(server, proxy, read_timeout=1)
    try:
        proxy.blackhole()
        t0 = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError):
            query(conn, "SELECT 1")
        assert 0.9 <= time.monotonic() - t0 < 5
        assert proxy.connections == 1  # the proxy still holds the swallowed link
    finally:
        conn.close()


def test_blackhole_then_pass_through_resumes(server: MariaDBServer, proxy: FaultProxy) -> None:
    proxy.blackhole()
    with pytest.raises(pymysql.err.OperationalError):
        connect_via(server, proxy, connect_timeout=1, read_timeout=1)
    proxy.pass_through()
    conn = connect_via(server, proxy)
    try:
        assert query(conn, "SELECT 7") == ((7,),)
    finally:
        conn.close()


def test_reset_after_mid_result(server: MariaDBServer, proxy: FaultProxy) -> None:
    conn = connect_via(server, proxy)
    try:
        proxy.reset_after(200_000)
        with pytest.raises(pymysql.err.OperationalError):
            # ~4 MB of rows; the connection dies after ~200 kB of them.
            query(conn, "SELECT seq, REPEAT('x', 1000) FROM seq_1_to_4000")
    finally:
        conn.close()
    proxy.pass_through()


def test_reset_all(server: MariaDBServer, proxy: FaultProxy) -> None:
    conns = [connect_via(server, proxy) for _ in range(3)]
    try:
        assert proxy.connections == 3
        proxy.reset_all()
        assert proxy.connections == 0
        for conn in conns:
            with pytest.raises(pymysql.err.OperationalError):
                query(conn, "SELECT 1")
    finally:
        for conn in conns:
            conn.close()


def test_refuse_and_accept_again(server: MariaDBServer, proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.refuse()
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError):
        connect_via(server, proxy, connect_timeout=5)
    assert time.monotonic() - t0 < 1
    proxy.accept_again()
    assert proxy.port == port
    conn = connect_via(server, proxy)
    try:
        assert query(conn, "SELECT 1") == ((1,),)
    finally:
        conn.close()


def test_half_close(server: MariaDBServer, proxy: FaultProxy) -> None:
    conn = connect_via(server, proxy, read_timeout=5)
    try:
        proxy.half_close()
        t0 = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError):
            query(conn, "SELECT 1")
        assert time.monotonic() - t0 < 4  # EOF, not the read timeout
    finally:
        conn.close()


def test_proxy_survives_server_kill(throwaway_mariadb: MariaDBServer) -> None:
    with FaultProxy.for_server(throwaway_mariadb) as proxy:
        conn = connect_via(throwaway_mariadb, proxy)
        throwaway_mariadb.kill()
        with pytest.raises(pymysql.err.OperationalError):
            query(conn, "SELECT 1")
        conn.close()
        with pytest.raises(pymysql.err.OperationalError):
            connect_via(throwaway_mariadb, proxy, connect_timeout=2)
        throwaway_mariadb.restart()
        conn = connect_via(throwaway_mariadb, proxy)
        try:
            assert query(conn, "SELECT 1") == ((1,),)
        finally:
            conn.close()
