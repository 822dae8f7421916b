"""greentor_compat's pools: mysql.ConnectionPool and the generic green.Pool."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import greenlet
import pymysql
import pytest
from pymysql.cursors import SSCursor

from greentor_compat import green, mysql
from tornpool.errors import (
    ConnectionReleased,
    ForeignConnection,
    GreenletRequired,
    PoolClosed,
    PoolError,
    PoolTimeout,
)
from tornpool.testing import FaultProxy, MariaDBServer


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDBServer]:
    with MariaDBServer() as srv:
        admin = pymysql.connect(**srv.connect_kwargs())
        with admin.cursor() as cur:
            cur.execute("CREATE USER gt_pool@'%'")
            cur.execute("GRANT ALL ON *.* TO gt_pool@'%'")
            cur.execute("CREATE TABLE test.ledger (id INT PRIMARY KEY, note VARCHAR(20))")
        admin.close()
        yield srv


def params(srv: MariaDBServer, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"host": srv.host, "port": srv.port, "user": "gt_pool", "database": "test",
                            "ssl_disabled": True, "autocommit": True}
    base.update(kw)
    return base


def server_side(srv: MariaDBServer, sql: str, args: Any = None) -> Any:
    """Run one statement on a blocking root connection of our own (autocommit)."""
    conn = pymysql.connect(**srv.connect_kwargs(autocommit=True))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def pool_sessions(srv: MariaDBServer) -> int:
    return int(server_side(srv, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'gt_pool'")[0][0])


@pytest.mark.gen_test(timeout=60)
async def test_fifty_sleeps_through_ten_connections(server: MariaDBServer) -> None:
    monitor = pymysql.connect(**server.connect_kwargs())
    cur = monitor.cursor()
    cur.execute("FLUSH STATUS")  # Max_used_connections := connections now open
    cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
    before = int(cur.fetchone()[1])
    pool = mysql.ConnectionPool(max_size=10, mysql_params=params(server))
    held: list[tuple[int, float, float, Any]] = []

    def job(n: int) -> int:
        conn = pool.get_conn()
        try:
            start = time.monotonic()
            with conn.cursor() as c:
                c.execute("SELECT SLEEP(0.2), %s", (n,))
                assert c.fetchone() == (0, n)
            held.append((conn.thread_id(), start, time.monotonic(), greenlet.getcurrent()))
            return n
        finally:
            pool.release(conn)

    start = time.monotonic()
    assert await asyncio.gather(*[green.spawn(job, n) for n in range(50)]) == list(range(50))
    elapsed = time.monotonic() - start
    cur.execute("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
    peak = int(cur.fetchone()[1]) - before
    monitor.close()
    await green.spawn(pool.quit)

    assert 0.95 < elapsed < 2.0  # five rounds of 0.2 s: about 1 s
    assert peak <= 10  # counted by the server
    by_connection: dict[int, list[tuple[float, float, Any]]] = {}
    for tid, t0, t1, glet in held:
        by_connection.setdefault(tid, []).append((t0, t1, glet))
    assert len(by_connection) <= 10
    for spans in by_connection.values():  # never two greenlets on one connection at once
        spans.sort(key=lambda s: s[0])
        for (_, end, g1), (begin, _, g2) in zip(spans, spans[1:]):
            assert g1 is not g2 and end <= begin


@pytest.mark.gen_test(timeout=30)
async def test_a_wait_timeout_is_a_typed_error(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(max_size=1, mysql_params=params(server), wait_timeout=0.2)
    conn = await green.spawn(pool.get_conn)
    start = time.monotonic()
    with pytest.raises(PoolTimeout) as info:
        await green.spawn(pool.get_conn)
    assert 0.19 < time.monotonic() - start < 1.5
    assert isinstance(info.value, PoolError) and isinstance(info.value, TimeoutError)
    pool.release(conn)
    other = await green.spawn(pool.get_conn)  # the one connection, handed on
    assert other is conn
    pool.release(other)
    await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=60)
async def test_a_failed_connect_gives_its_capacity_back(server: MariaDBServer) -> None:
    with FaultProxy(server.host, server.port) as proxy:
        proxy.refuse()
        pool = mysql.ConnectionPool(max_size=2, mysql_params=params(server, port=proxy.port),
                                    wait_timeout=0.4, reconnect_max_interval=0.2)
        for _ in range(3):  # greentor lost a slot on each of these
            with pytest.raises(PoolTimeout) as info:
                await green.spawn(pool.get_conn)
            assert isinstance(info.value.__cause__, pymysql.err.OperationalError)
            assert info.value.__cause__.args[0] == 2003
        proxy.accept_again()
        pool.wait_timeout = 5

        def two_at_once() -> list[int]:
            first = pool.get_conn()
            second = pool.get_conn()
            ids = [first.thread_id(), second.thread_id()]
            pool.release(first)
            pool.release(second)
            return ids

        ids = await green.spawn(two_at_once)
        assert len(set(ids)) == 2  # both slots are there again
        await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=30)
async def test_bad_credentials_fail_at_once(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(mysql_params=params(server, user="nobody", password="wrong"), wait_timeout=5)
    start = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        await green.spawn(pool.get_conn)
    assert info.value.args[0] == 1045
    assert time.monotonic() - start < 2.0  # not retried until the wait timeout
    await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=30)
async def test_a_released_connection_refuses_use(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(max_size=1, mysql_params=params(server))

    def body() -> tuple[Any, ...]:
        conn = pool.get_conn()
        cur = conn.cursor()
        cur.execute("SELECT 1 UNION SELECT 2")
        first = cur.fetchone()
        pool.release(conn)
        rest = cur.fetchall()  # rows already read stay readable
        with pytest.raises(ConnectionReleased):
            cur.execute("SELECT 3")
        with pytest.raises(ConnectionReleased):
            pool.release(conn)
        stranger = pymysql.connect(**params(server))
        with pytest.raises(ForeignConnection):
            pool.release(stranger)
        stranger.close()
        again = pool.get_conn()  # the refusal did not harm it
        with again.cursor() as c:
            c.execute("SELECT 4")
            four = c.fetchone()
        pool.release(again)
        return first, tuple(rest), again is conn, four

    assert await green.spawn(body) == ((1,), ((2,),), True, (4,))
    await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=30)
async def test_an_open_transaction_is_rolled_back_and_logged(
        server: MariaDBServer, caplog: pytest.LogCaptureFixture) -> None:
    pool = mysql.ConnectionPool(max_size=1, mysql_params=params(server))

    def forgetful() -> None:
        conn = pool.get_conn()
        conn.begin()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO ledger VALUES (1, 'uncommitted')")
        pool.release(conn)

    def count() -> int:
        conn = pool.get_conn()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM ledger WHERE id = 1")
                return int(cur.fetchone()[0])
        finally:
            pool.release(conn)

    with caplog.at_level(logging.WARNING, logger="greentor_compat.pool"):
        await green.spawn(forgetful)
        assert await green.spawn(count) == 0
    assert any("inside a transaction" in r.getMessage() and "forgetful" in r.getMessage()
               for r in caplog.records)
    await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=30)
async def test_an_unfinished_streaming_result_closes_the_connection(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(max_size=1, mysql_params=params(server))

    def stream_then_release() -> int:
        conn = pool.get_conn()
        cur = conn.cursor(SSCursor)
        cur.execute("SELECT seq FROM seq_1_to_100000")
        cur.fetchone()
        tid = conn.thread_id()
        pool.release(conn)  # 99,999 rows still on the wire
        return int(tid)

    def next_lease() -> tuple[int, Any]:
        conn = pool.get_conn()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 7")
                return int(conn.thread_id()), cur.fetchone()
        finally:
            pool.release(conn)

    first = await green.spawn(stream_then_release)
    second, row = await green.spawn(next_lease)
    assert row == (7,) and second != first
    await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=30)
async def test_a_connection_killed_while_idle_is_replaced(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(max_size=1, keep_alive=0.05, mysql_params=params(server))

    def lease_id() -> int:
        conn = pool.get_conn()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                return int(cur.fetchone()[0])
        finally:
            pool.release(conn)

    first = await green.spawn(lease_id)
    server_side(server, "KILL %d" % first)
    await asyncio.sleep(0.2)
    second = await green.spawn(lease_id)
    assert second != first
    await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=30)
async def test_a_statement_cut_off_by_a_timeout_is_killed_on_the_server(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(max_size=2, mysql_params=params(server))
    tids: list[int] = []

    def long_query() -> None:
        conn = pool.get_conn()
        tids.append(conn.thread_id())
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT SLEEP(10)")
        finally:
            pool.release(conn)

    with pytest.raises(green.TimeoutException):
        await green.spawn(long_query, timeout=0.2)
    deadline = time.monotonic() + 5
    while server_side(server, "SELECT 1 FROM information_schema.processlist WHERE id = %s", (tids[0],)):
        assert time.monotonic() < deadline, "the server still runs the abandoned statement"
        await asyncio.sleep(0.05)
    await green.spawn(pool.quit)


@pytest.mark.gen_test(timeout=30)
async def test_get_conn_outside_a_green_task_is_refused(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(mysql_params=params(server))
    with pytest.raises(GreenletRequired):
        pool.get_conn()
    await pool.quit()  # from a coroutine: a Future to await


@pytest.mark.gen_test(timeout=30)
async def test_quit_closes_every_connection(server: MariaDBServer) -> None:
    pool = mysql.ConnectionPool(max_size=3, mysql_params=params(server), min_size=3)
    await green.spawn(pool.init_pool)
    assert pool.size == 3 and pool_sessions(server) == 3
    with pool_connection(pool) as run:
        assert await run("SELECT 5") == ((5,),)
    await green.spawn(pool.quit)
    assert pool.closed
    with pytest.raises(PoolClosed):
        await green.spawn(pool.get_conn)
    deadline = time.monotonic() + 3
    while pool_sessions(server):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


class pool_connection:
    """``with pool_connection(pool) as run:`` -- ``await run(sql)`` runs it on
    one connection from ``pool.connection()`` in a green task."""

    def __init__(self, pool: mysql.ConnectionPool) -> None:
        self.pool = pool

    def __enter__(self) -> Any:
        def run_sql(sql: str) -> Any:
            with self.pool.connection() as conn, conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()

        return lambda sql: green.spawn(run_sql, sql)

    def __exit__(self, *exc: Any) -> None:
        pass


class Widget:
    made = 0

    def __init__(self) -> None:
        Widget.made += 1
        self.closed = False

    def close(self) -> None:
        self.closed = True


class WidgetPool(green.Pool):
    fail_next = 0

    def create_raw_conn(self) -> Widget:
        green.sleep(0.01)  # blocking style works here: it runs in a greenlet of its own
        if WidgetPool.fail_next:
            WidgetPool.fail_next -= 1
            raise OSError("widget factory jammed")
        return Widget()


@pytest.mark.gen_test(timeout=30)
async def test_the_generic_pool_with_a_subclass(caplog: pytest.LogCaptureFixture) -> None:
    Widget.made = 0
    WidgetPool.fail_next = 1
    pool = WidgetPool(max_size=2, wait_timeout=0.3, params={"kind": "widget"}, reconnect_interval=0.01)
    assert pool.params == {"kind": "widget"}

    def two() -> tuple[Widget, Widget]:
        return pool.get_conn(), pool.get_conn()

    with caplog.at_level(logging.CRITICAL):
        a, b = await green.spawn(two)  # the first create failed, was retried
    assert a is not b and Widget.made == 2 and pool.size == 0
    with pytest.raises(PoolTimeout):
        await green.spawn(pool.get_conn)
    pool.release(a)
    assert pool.size == 1
    assert await green.spawn(pool.get_conn) is a
    pool.release(a)
    pool.release(b)
    await green.spawn(pool.quit)
    assert a.closed and b.closed


def test_the_generic_pool_must_be_told_how_to_connect() -> None:
    with pytest.raises(NotImplementedError):
        green.Pool().create_raw_conn()


@pytest.mark.gen_test(timeout=30)
async def test_without_autocommit_a_lease_never_sees_the_last_ones_snapshot(server: MariaDBServer) -> None:
    # A plain SELECT without autocommit opens a transaction MariaDB does not
    # flag; kept open, the next lease would read a stale snapshot.
    pool = mysql.ConnectionPool(max_size=1, mysql_params=params(server, autocommit=False))

    def count_rows() -> int:
        conn = pool.get_conn()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM ledger WHERE id >= 100")
                return int(cur.fetchone()[0])
        finally:
            pool.release(conn)

    before = await green.spawn(count_rows)
    server_side(server, "INSERT INTO test.ledger VALUES (100, 'committed')")
    try:
        assert await green.spawn(count_rows) == before + 1
        # ... and it holds no transaction, so no metadata lock, between leases
        # (the rollback runs on the loop after release(): idle again once done)
        while pool.size == 0:
            await asyncio.sleep(0.005)
        assert not server_side(server, "SELECT trx_mysql_thread_id FROM information_schema.innodb_trx")
        locker = pymysql.connect(**server.connect_kwargs(autocommit=True))
        with locker.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 2")
            cur.execute("LOCK TABLES test.ledger WRITE")  # would wait for a lease's lock
            cur.execute("UNLOCK TABLES")
        locker.close()
    finally:
        server_side(server, "DELETE FROM test.ledger WHERE id = 100")
        await green.spawn(pool.quit)
