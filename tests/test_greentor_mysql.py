"""greentor_compat.mysql: PyMySQL through the bridge after patch_pymysql().

Every test compares with what plain, blocking PyMySQL does, on a real server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysql.cursors import SSCursor
from tornado.ioloop import IOLoop

from greentor_compat import green, mysql
from tornpool.errors import ConnectionBusy, GreenletRequired
from tornpool.testing import FaultProxy, MariaDBServer


@pytest.fixture
def patched() -> Iterator[None]:
    with mysql.patched():
        yield


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDBServer]:
    """A TLS-capable throwaway server with LOAD DATA LOCAL enabled."""
    with MariaDBServer(tls=True, extra_args=["--local-infile=1"]) as srv:
        yield srv


def tcp(srv: MariaDBServer, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"host": srv.host, "port": srv.port, "user": "root", "database": "test"}
    base.update(kw)
    return base


class Ticker:
    """Counts loop iterations of a 1 ms timer: proof the loop ran."""

    def __init__(self) -> None:
        self.ticks = 0
        self._handle: asyncio.TimerHandle | None = None

    def _tick(self) -> None:
        self.ticks += 1
        self._handle = asyncio.get_running_loop().call_later(0.001, self._tick)

    def __enter__(self) -> Ticker:
        self._tick()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._handle is not None
        self._handle.cancel()


@pytest.mark.gen_test(timeout=30)
async def test_queries_in_green_tasks_overlap_and_leave_the_loop_free(
        server: MariaDBServer, patched: None) -> None:
    def query(n: int) -> Any:
        conn = pymysql.connect(**tcp(server, ssl_disabled=True))
        try:
            cur = conn.cursor()
            cur.execute("SELECT SLEEP(0.3), %s", (n,))
            return cur.fetchone()
        finally:
            conn.close()

    with Ticker() as ticker:
        start = time.monotonic()
        rows = await asyncio.gather(*[green.spawn(query, n) for n in range(10)])
        elapsed = time.monotonic() - start
    assert rows == [(0, n) for n in range(10)]
    assert elapsed < 2.0  # ten SLEEP(0.3) overlap: about 0.3 s, never 3 s
    assert ticker.ticks >= 100  # the loop kept running its timers meanwhile


@pytest.mark.gen_test(timeout=30)
async def test_tls_and_unix_sockets_through_the_bridge(server: MariaDBServer, patched: None) -> None:
    def over(kw: dict[str, Any]) -> tuple[Any, ...]:
        conn = pymysql.connect(**kw)
        try:
            cur = conn.cursor()
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            cipher = cur.fetchone()[1]
            cur.execute("SELECT SLEEP(0.2), 'ok'")
            return conn.host_info, bool(cipher), cur.fetchone()[1]
        finally:
            conn.close()

    kinds = [
        tcp(server, ssl={"ca": server.ssl_ca}),  # verified TLS
        {"unix_socket": server.unix_socket, "user": "root", "database": "test"},
    ]
    with Ticker() as ticker:
        start = time.monotonic()
        got = await asyncio.gather(*[green.spawn(over, kw) for kw in kinds])
        assert time.monotonic() - start < 1.5
    assert got[0] == ("socket %s:%d" % (server.host, server.port), True, "ok")
    assert got[1][0] == "Localhost via UNIX socket" and got[1][2] == "ok"
    assert ticker.ticks >= 50


@pytest.mark.gen_test(timeout=30)
async def test_outside_a_green_task_pymysql_stays_blocking(server: MariaDBServer, patched: None) -> None:
    # On the loop's own greenlet the connection is PyMySQL's own: it works,
    # and (being blocking) the loop does not run during its query.
    with Ticker() as ticker:
        conn = pymysql.connect(**tcp(server, ssl_disabled=True))
        cur = conn.cursor()
        before = ticker.ticks
        cur.execute("SELECT SLEEP(0.1)")
        assert ticker.ticks == before
        conn.close()
    # In a thread, too.
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(_one_query(tcp(server, ssl_disabled=True))))
    thread.start()
    thread.join()
    assert out == [(1,)]


def _one_query(kw: dict[str, Any]) -> Any:
    conn = pymysql.connect(**kw)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        return cur.fetchone()
    finally:
        conn.close()


def test_patch_twice_is_harmless_and_unpatch_restores() -> None:
    own = pymysql.connections.Connection.connect
    assert not mysql.is_patched()
    mysql.patch_pymysql()
    mysql.patch_pymysql()
    assert mysql.is_patched()
    mysql.unpatch_pymysql()
    assert pymysql.connections.Connection.connect is own
    with mysql.patched():
        with mysql.patched():
            assert mysql.is_patched()
        assert mysql.is_patched()
    assert not mysql.is_patched()


@pytest.mark.gen_test(timeout=30)
async def test_a_socket_the_caller_made_is_used_as_it_is(server: MariaDBServer, patched: None) -> None:
    ticker = Ticker()

    def body() -> Any:
        sock = socket.create_connection((server.host, server.port))
        conn = pymysql.connect(defer_connect=True, user="root", database="test", ssl_disabled=True)
        conn.connect(sock)  # PyMySQL's own blocking socket, as before the patch
        try:
            cur = conn.cursor()
            before = ticker.ticks
            cur.execute("SELECT SLEEP(0.1), 2")
            return cur.fetchone(), ticker.ticks - before
        finally:
            conn.close()
            sock.close()

    with ticker:
        assert await green.spawn(body) == ((0, 2), 0)  # it blocked: the loop did not tick


@pytest.mark.gen_test(timeout=30)
async def test_read_timeout_fails_as_on_a_blocking_socket(server: MariaDBServer, patched: None) -> None:
    kw = tcp(server, ssl_disabled=True, read_timeout=0.3)

    def timed_out() -> tuple[Any, ...]:
        conn = pymysql.connect(**kw)
        start = time.monotonic()
        try:
            conn.cursor().execute("SELECT SLEEP(3)")
        except pymysql.err.OperationalError as exc:
            return exc.args, time.monotonic() - start, conn.open
        return ("no error",)

    with Ticker() as ticker:
        green_outcome = await green.spawn(timed_out)
    assert ticker.ticks >= 100
    blocking_outcome = await asyncio.get_running_loop().run_in_executor(None, timed_out)
    assert green_outcome[0] == blocking_outcome[0]  # same errno and message
    assert green_outcome[0][0] == 2013 and "timed out" in green_outcome[0][1]
    assert 0.29 < green_outcome[1] < 1.5 and green_outcome[2] is False


@pytest.mark.gen_test(timeout=30)
async def test_connect_errors_match_blocking_pymysql(patched: None) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now

    def refused() -> Any:
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2)
        except pymysql.err.OperationalError as exc:
            return exc.args[0], "Can't connect to MySQL server on '127.0.0.1'" in exc.args[1]
        return None

    assert await green.spawn(refused) == await asyncio.get_running_loop().run_in_executor(None, refused)
    assert await green.spawn(refused) == (2003, True)


@pytest.mark.gen_test(timeout=30)
async def test_a_server_that_never_greets_is_bounded_by_read_timeout(
        server: MariaDBServer, patched: None) -> None:
    with FaultProxy(server.host, server.port) as proxy:
        proxy.blackhole()

        def attempt() -> Any:
            start = time.monotonic()
            try:
                pymysql.connect(host="127.0.0.1", port=proxy.port, user="root", read_timeout=0.3)
            except pymysql.err.OperationalError as exc:
                return exc.args, time.monotonic() - start
            return None

        # the TCP connect succeeds; the greeting never comes
        green_error, green_took = await green.spawn(attempt)
        blocking_error, _ = await asyncio.get_running_loop().run_in_executor(None, attempt)
    assert green_error == blocking_error
    assert green_error[0] == 2013
    assert 0.29 < green_took < 1.5


@pytest.mark.gen_test(timeout=30)
async def test_kill_and_ping(server: MariaDBServer, patched: None) -> None:
    def body() -> tuple[Any, ...]:
        victim = pymysql.connect(**tcp(server, ssl_disabled=True))
        killer = pymysql.connect(**tcp(server, ssl_disabled=True))
        try:
            victim.ping()
            killer.kill(victim.thread_id())
            green.sleep(0.1)
            try:
                victim.ping(False)
            except pymysql.err.OperationalError as exc:
                return exc.args[0], victim.open
            return ("ping worked",)
        finally:
            killer.close()

    errno, still_open = await green.spawn(body)
    assert errno in (2006, 2013, 1927)
    assert still_open is False


@pytest.mark.gen_test(timeout=60)
async def test_sscursor_streams_a_large_result_through_the_loop(server: MariaDBServer, patched: None) -> None:
    def stream() -> tuple[int, int]:
        conn = pymysql.connect(**tcp(server, ssl_disabled=True))
        try:
            cur = conn.cursor(SSCursor)
            cur.execute("SELECT seq, REPEAT('x', 200) FROM seq_1_to_200000")
            count = total = 0
            for seq, _ in cur:
                count += 1
                total += seq
            cur.close()
            return count, total
        finally:
            conn.close()

    with Ticker() as ticker:
        assert await green.spawn(stream) == (200000, 200000 * 200001 // 2)
    assert ticker.ticks > 0


@pytest.mark.gen_test(timeout=30)
async def test_load_data_local_infile(server: MariaDBServer, patched: None) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("".join("%d,name%d\n" % (i, i) for i in range(1000)))
    try:
        def body() -> Any:
            conn = pymysql.connect(**tcp(server, ssl_disabled=True, local_infile=True))
            try:
                cur = conn.cursor()
                cur.execute("CREATE TEMPORARY TABLE li (id INT, name VARCHAR(20))")
                cur.execute("LOAD DATA LOCAL INFILE %s INTO TABLE li FIELDS TERMINATED BY ','", (f.name,))
                cur.execute("SELECT COUNT(*), SUM(id) FROM li")
                return cur.fetchone()
            finally:
                conn.close()

        assert await green.spawn(body) == (1000, 499500)
    finally:
        os.unlink(f.name)


@pytest.mark.gen_test(timeout=30)
async def test_a_timeout_mid_query_closes_the_connection(server: MariaDBServer, patched: None) -> None:
    conns: list[Any] = []

    def body() -> None:
        conn = pymysql.connect(**tcp(server, ssl_disabled=True))
        conns.append(conn)
        conn.cursor().execute("SELECT SLEEP(5)")

    start = time.monotonic()
    with pytest.raises(green.TimeoutException):
        await green.spawn(body, timeout=0.2)
    assert time.monotonic() - start < 2.0
    assert conns[0].open is False  # its reply would arrive for nobody


@pytest.mark.gen_test(timeout=30)
async def test_two_tasks_on_one_connection_get_a_typed_error(server: MariaDBServer, patched: None) -> None:
    conn = await green.spawn(pymysql.connect, **tcp(server, ssl_disabled=True))

    def first() -> Any:
        cur = conn.cursor()
        cur.execute("SELECT SLEEP(0.3), 1")
        return cur.fetchone()

    def second() -> None:
        conn.cursor().execute("SELECT 2")

    one = green.spawn(first)
    with pytest.raises(ConnectionBusy):
        await green.spawn(second)
    assert await one == (0, 1)  # the first one was not disturbed
    await green.spawn(conn.close)


@pytest.mark.gen_test(timeout=30)
async def test_a_bridged_connection_refuses_the_running_loops_greenlet(
        server: MariaDBServer, patched: None) -> None:
    conn = await green.spawn(pymysql.connect, **tcp(server, ssl_disabled=True))
    cur = conn.cursor()
    with pytest.raises(GreenletRequired):
        cur.execute("SELECT 1")  # blocking here would block the loop
    assert conn.open is False  # PyMySQL closes a connection whose read failed
    await asyncio.sleep(0)  # let the transport finish closing before the loop does


def test_a_bridged_connection_keeps_working_after_the_loop_stopped(server: MariaDBServer) -> None:
    with mysql.patched():
        loop = IOLoop(make_current=False)
        try:
            conn = loop.run_sync(lambda: green.spawn(pymysql.connect, **tcp(server, ssl_disabled=True)))
            cur = conn.cursor()
            cur.execute("SELECT 40 + 2")  # the stopped loop is run for the reply
            assert cur.fetchone() == (42,)
            conn.close()
        finally:
            loop.close(all_fds=True)


@pytest.mark.gen_test(timeout=30)
async def test_connect_works_without_the_patch(server: MariaDBServer) -> None:
    assert not mysql.is_patched()

    def body() -> Any:
        conn = mysql.connect(**tcp(server, ssl_disabled=True))
        try:
            cur = conn.cursor()
            cur.execute("SELECT SLEEP(0.2), 3")
            return cur.fetchone()
        finally:
            conn.close()

    with Ticker() as ticker:
        assert await green.spawn(body) == (0, 3)
    assert ticker.ticks >= 50
