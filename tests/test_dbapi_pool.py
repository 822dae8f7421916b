"""tornpool.dbapi.ExecutorPool over sqlite3: the pool's own rules (thread
binding, FIFO, cap, timeouts and cancellation, transactions, bad input,
close, Tornado handlers).  The same contract over the networked drivers is
in test_dbapi_drivers.py.

sqlite3 needs no server; a user function ``nap(s)`` (``time.sleep`` in the
connection's thread) stands for a statement that no interrupt can stop, and
``tid()`` says which thread ran a statement.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tornado import gen
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

from tornpool import errors
from tornpool.dbapi import ExecutorConfigError, ExecutorPool, Result, SQLiteProxy

from sqlite_pool_helpers import functions, make_pool

#: a pure-SQL statement that takes about a second and a half (interruptible)
LONG = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) "
        "SELECT count(*) FROM c")


async def tid(target: Any) -> int:
    """The thread that ran the statement."""
    res = await target.execute("SELECT tid()")
    value: int = res.fetchone()[0]
    return value


async def cid(target: Any) -> int:
    """Which connection ran the statement (threads' ids are reused)."""
    res = await target.execute("SELECT cid()")
    value: int = res.fetchone()[0]
    return value


@pytest.mark.gen_test(timeout=30)
async def test_execute_results_and_the_proxys_result_class(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=2) as pool:
        assert pool.paramstyle == "qmark"
        await pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        ins = await pool.execute("INSERT INTO t (name) VALUES (?)", ("a",))
        assert isinstance(ins, Result) and ins.rowcount == 1 and ins.lastrowid == 1
        many = await pool.executemany("INSERT INTO t (name) VALUES (?)", [("b",), ("c",)])
        assert many.rowcount == 2 and many.rows == []
        res = await pool.execute("SELECT id, name FROM t WHERE id >= ? ORDER BY id", (1,))
        assert res.columns == ["id", "name"] and res.rowcount == 3 and len(res) == 3
        assert res.fetchone() == (1, "a")
        assert res.fetchmany(1) == [(2, "b")]
        assert res.fetchall() == [(3, "c")] and res.fetchone() is None
        # a proxy over the same file returns the same class
        proxy = SQLiteProxy(str(tmp_path / "t.db"), readers=0)
        try:
            assert type(proxy.execute("SELECT 1")) is type(res)
        finally:
            proxy.close()


@pytest.mark.gen_test(timeout=30)
async def test_each_connection_lives_in_one_thread_not_the_loops(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=3) as pool:
        async with pool.acquire() as a, pool.acquire() as b, pool.acquire() as c:
            seen = [{await tid(conn) for _ in range(5)} for conn in (a, b, c)]
        assert all(len(s) == 1 for s in seen), seen
        threads = {next(iter(s)) for s in seen}
        assert len(threads) == 3 and threading.get_ident() not in threads
        # sqlite3 itself would refuse a connection used from another thread:
        # the pool never does that
        assert {await tid(pool) for _ in range(20)} <= threads


@pytest.mark.gen_test(timeout=30)
async def test_executemany_is_one_transaction(tmp_path: Path) -> None:
    async with make_pool(tmp_path) as pool:
        await pool.execute("CREATE TABLE u (k INTEGER PRIMARY KEY)")
        with pytest.raises(sqlite3.IntegrityError):
            await pool.executemany("INSERT INTO u VALUES (?)", [(1,), (2,), (2,)])
        assert (await pool.execute("SELECT count(*) FROM u")).fetchone() == (0,)
        assert not pool.engine.idle_slots()[0].conn.in_transaction


@pytest.mark.gen_test(timeout=30)
async def test_transaction_forms(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=2) as pool:
        await pool.execute("CREATE TABLE v (k INTEGER PRIMARY KEY)")
        async with pool.transaction() as conn:
            await conn.execute("INSERT INTO v VALUES (1)")
            assert conn.in_transaction
        with pytest.raises(RuntimeError):
            async with pool.transaction() as conn:
                await conn.execute("INSERT INTO v VALUES (2)")
                raise RuntimeError("undo")
        with pytest.raises(sqlite3.IntegrityError):
            await pool.transaction(["INSERT INTO v VALUES (3)", ("INSERT INTO v VALUES (?)", (1,))])
        done = await pool.transaction([("INSERT INTO v VALUES (?)", (4,)), "SELECT count(*) FROM v"])
        assert done[1].fetchone() == (2,)

        @gen.coroutine
        def classic() -> Any:
            tx = yield pool.transaction()
            with tx:
                yield tx.execute("INSERT INTO v VALUES (5)")
                yield tx.commit()
            with (yield pool.acquire()) as conn:
                res = yield conn.execute("SELECT k FROM v ORDER BY k")
            tx = yield pool.transaction()
            with tx:  # left without commit: rolled back
                yield tx.execute("INSERT INTO v VALUES (6)")
            return res

        res = await classic()
        assert [r[0] for r in res.fetchall()] == [1, 4, 5]
        assert (await pool.execute("SELECT count(*) FROM v WHERE k = 6")).fetchone() == (0,)


@pytest.mark.gen_test(timeout=30)
async def test_lease_returned_in_a_transaction_is_rolled_back_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with make_pool(tmp_path) as pool:
        await pool.execute("CREATE TABLE w (k INTEGER)")
        with caplog.at_level(logging.WARNING, logger="tornpool.dbapi"):
            async with pool.acquire() as conn:
                await conn.begin()
                await conn.execute("INSERT INTO w VALUES (1)")
            await asyncio.sleep(0.05)  # the rollback runs in the thread
        assert "returned inside a transaction" in caplog.text
        assert (await pool.execute("SELECT count(*) FROM w")).fetchone() == (0,)
        assert pool.stats()["returns_bad"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_fifo_no_handback(tmp_path: Path) -> None:
    async with make_pool(tmp_path) as pool:
        order: list[int] = []

        async def caller(i: int) -> None:
            await pool.execute("SELECT nap(0.01)")
            order.append(i)

        tasks = []
        for i in range(8):
            tasks.append(asyncio.ensure_future(caller(i)))
            await asyncio.sleep(0)  # queue them in this order
        await asyncio.gather(*tasks)
        assert order == list(range(8))


@pytest.mark.gen_test(timeout=30)
async def test_calls_overlap_up_to_the_cap_and_no_further(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=0, max_size=10) as pool:
        t0 = time.monotonic()
        await asyncio.gather(*[pool.execute("SELECT nap(0.3)") for _ in range(10)])
        overlapped = time.monotonic() - t0
        assert overlapped < 1.5, overlapped  # ten at once: about 0.3 s, not 3 s
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, pool.stats()["threads_alive"])
                await asyncio.sleep(0.01)

        sampler = asyncio.ensure_future(sample())
        await asyncio.gather(*[pool.execute("SELECT nap(0.02)") for _ in range(60)])
        sampler.cancel()
        assert peak == 10


@pytest.mark.gen_test(timeout=30)
async def test_observing_matches_the_mysql_pool(tmp_path: Path) -> None:
    """Prometheus text, histograms, listeners and drain: the same surface as
    tornpool.Pool (both stand on PoolFacade)."""
    events: list[str] = []
    async with make_pool(tmp_path, size=1, max_size=2, name="obs") as pool:
        pool.add_listener(lambda event: events.append(event.kind))
        before = pool.histograms()
        for _ in range(3):
            await pool.execute("SELECT 1")
        text = pool.prometheus(prefix="app")
        assert 'app_requests_num_total{pool="obs"} 3' in text
        assert 'app_pool_max{pool="obs"} 2' in text
        assert 'app_request_wait_seconds_count{pool="obs"} 3' in text
        assert pool.histograms()["wait"].since(before["wait"]).count == 3
        old = await cid(pool)
        await pool.drain()  # replaces the connection: a new one serves next
        assert await cid(pool) != old
        assert events.count("connect") >= 1 and "closed" in events


@pytest.mark.gen_test(timeout=30)
async def test_timed_out_call_keeps_its_connection_until_the_thread_returns(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1, max_size=1) as pool:
        first = await cid(pool)
        t0 = time.monotonic()
        with pytest.raises(errors.CommandTimeout):
            await pool.execute("SELECT nap(0.8)", timeout=0.1)
        assert time.monotonic() - t0 < 0.5  # the caller is told at once
        stats = pool.stats()
        assert stats["abandoned_running"] == 1 and stats["threads_alive"] == 1
        assert [c["state"] for c in pool.connections()] == ["in use"]
        # the only connection is still busy: the next caller waits for its
        # thread, then gets a new connection (the old one is closed)
        second = await cid(pool)
        assert time.monotonic() - t0 >= 0.75
        assert second != first
        stats = pool.stats()
        assert stats["calls_abandoned"] == 1 and stats["abandoned_running"] == 0
        assert stats["threads_alive"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_cancelled_call_keeps_its_connection_until_the_thread_returns(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1, max_size=1) as pool:
        first = await cid(pool)
        t0 = time.monotonic()
        task = asyncio.ensure_future(pool.execute("SELECT nap(0.6)"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        waiter = asyncio.ensure_future(cid(pool))
        await asyncio.sleep(0.2)
        assert not waiter.done()  # nobody gets the connection while its thread runs
        second = await waiter
        assert time.monotonic() - t0 >= 0.55 and second != first


@pytest.mark.gen_test(timeout=30)
async def test_lease_released_mid_call_is_taken_back_only_when_the_thread_returns(
        tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1, max_size=1) as pool:
        first = await cid(pool)
        t0 = time.monotonic()

        async def hold() -> None:
            async with pool.acquire() as conn:
                await conn.execute("SELECT nap(0.6)")

        task = asyncio.ensure_future(hold())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with pool.acquire(timeout=5) as conn:
            assert time.monotonic() - t0 >= 0.55
            assert await cid(conn) != first
        assert pool.stats()["calls_abandoned"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_interrupt_stops_a_timed_out_statement(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=1, max_size=1) as pool:
        t0 = time.monotonic()
        await pool.execute(LONG)
        alone = time.monotonic() - t0
        t0 = time.monotonic()
        with pytest.raises(errors.CommandTimeout):
            await pool.execute(LONG, timeout=0.05)
        await pool.execute("SELECT 1")  # waits for the interrupted thread
        assert time.monotonic() - t0 < alone / 2, alone


@pytest.mark.gen_test(timeout=30)
async def test_bad_input_and_misuse(tmp_path: Path) -> None:
    with pytest.raises(ExecutorConfigError):
        ExecutorPool("no_such_dbapi_module")
    with pytest.raises(ExecutorConfigError):
        ExecutorPool(threading)  # a module, but not a DB-API one
    with pytest.raises(ExecutorConfigError):
        ExecutorPool(sqlite3, ":memory:", size=3, max_size=2)
    with pytest.raises(ExecutorConfigError):
        ExecutorPool(sqlite3, ":memory:", session_reset="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ExecutorConfigError):
        ExecutorPool(sqlite3, ":memory:", init_sql="PRAGMA foreign_keys=ON")
    assert issubclass(ExecutorConfigError, errors.InterfaceError)
    missing = ExecutorPool(sqlite3, str(tmp_path / "no" / "such" / "dir.db"))
    with pytest.raises(sqlite3.OperationalError):
        await missing.connect()
    assert missing.closed
    async with make_pool(tmp_path, size=1, max_size=1, timeout=0.2) as pool:
        with pytest.raises(sqlite3.OperationalError):
            await pool.execute("SELEKT 1")
        with pytest.raises(sqlite3.ProgrammingError):
            await pool.execute("SELECT ?", (1, 2))
        async with pool.acquire() as conn:
            running = conn.execute("SELECT nap(0.2)")
            with pytest.raises(errors.ConnectionBusy):
                await conn.execute("SELECT 1")
            await running
            with pytest.raises(errors.PoolTimeout):
                await pool.execute("SELECT 1")  # the only connection is leased
        with pytest.raises(errors.ConnectionReleased):
            await conn.execute("SELECT 1")
        assert pool.errors() == {"OperationalError": 1, "ProgrammingError": 1, "PoolTimeout": 1}
    with pytest.raises(errors.PoolClosed):
        await pool.execute("SELECT 1")
    with pytest.raises(errors.PoolClosed):
        await pool.close()


def test_wrong_event_loop(tmp_path: Path) -> None:
    pool = make_pool(tmp_path)
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(_execute(pool)).fetchone() == (1,)
        with pytest.raises(errors.WrongEventLoop):
            asyncio.run(_execute(pool))
        loop.run_until_complete(pool.close())
    finally:
        loop.close()


async def _execute(pool: ExecutorPool) -> Any:
    return await pool.execute("SELECT 1")


@pytest.mark.gen_test(timeout=30)
async def test_setup_hooks_and_session_reset(tmp_path: Path) -> None:
    ran: list[str] = []

    def initializer(conn: sqlite3.Connection) -> None:
        functions(conn)
        ran.append("init")

    async with make_pool(tmp_path, init_sql=["PRAGMA foreign_keys=ON"], initializer=initializer,
                         reset=lambda conn: ran.append("reset")) as pool:
        assert (await pool.execute("PRAGMA foreign_keys")).fetchone() == (1,)
        await pool.execute("SELECT 1")  # one connection: runs after the first one's reset
        assert ran[:2] == ["init", "reset"] and ran.count("init") == 1
    # sqlite3 has no session reset: "always" replaces the connection
    async with make_pool(tmp_path, session_reset="always") as pool:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TEMP TABLE scratch (x)")
            first = await cid(conn)
        async with pool.acquire() as conn:
            assert await cid(conn) != first
            with pytest.raises(sqlite3.OperationalError):
                await conn.execute("SELECT * FROM scratch")


@pytest.mark.gen_test(timeout=30)
async def test_without_autocommit_pool_calls_commit_and_leases_do_not(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=2, autocommit=False) as pool:
        await pool.execute("CREATE TABLE x (k INTEGER)")
        await pool.execute("INSERT INTO x VALUES (1)")
        await pool.executemany("INSERT INTO x VALUES (?)", [(2,), (3,)])
        async with pool.acquire() as a, pool.acquire() as b:
            assert (await a.execute("SELECT count(*) FROM x")).fetchone() == (3,)
            await a.execute("INSERT INTO x VALUES (4)")
            assert a.in_transaction
            assert (await b.execute("SELECT count(*) FROM x")).fetchone() == (3,)
            await a.commit()
            assert (await b.execute("SELECT count(*) FROM x")).fetchone() == (4,)


@pytest.mark.gen_test(timeout=30)
async def test_run_and_close_ends_every_thread(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, size=3, name="closing-test")
    await pool.connect()
    path = await pool.run(lambda conn: conn.execute("PRAGMA database_list").fetchone()[2])
    assert path.endswith("t.db")
    ours = [t for t in threading.enumerate() if t.name.startswith("closing-test-")]
    assert len(ours) == 3
    await pool.close()
    assert pool.stats()["threads_alive"] == 0  # every connection closed in its thread
    for thread in ours:
        thread.join(1.0)  # (each returns right after closing its connection)
        assert not thread.is_alive()


@pytest.mark.gen_test(timeout=30)
async def test_close_cuts_a_running_call_and_waits_for_its_thread(tmp_path: Path) -> None:
    pool = make_pool(tmp_path)
    await pool.connect()
    conn = await pool.acquire()
    running = asyncio.ensure_future(conn.execute("SELECT nap(0.4)"))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    await pool.close(timeout=0.25)  # cuts the lease after 0.25 s, then waits for its thread
    assert time.monotonic() - t0 >= 0.3
    assert pool.stats()["threads_alive"] == 0
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        await running  # cut off: asked to stop when close() gave up on it
    assert conn.released


class _AsyncHandler(RequestHandler):
    async def get(self) -> None:
        pool: ExecutorPool = self.settings["pool"]
        res = await pool.execute("SELECT ? || '-async'", (self.get_argument("v"),))
        self.write(res.fetchone()[0])


class _ClassicHandler(RequestHandler):
    @gen.coroutine
    def get(self) -> Any:
        pool: ExecutorPool = self.settings["pool"]
        with (yield pool.acquire()) as conn:
            res = yield conn.execute("SELECT ? || '-classic'", (self.get_argument("v"),))
        self.write(res.fetchone()[0])


@pytest.mark.gen_test(timeout=30)
async def test_from_tornado_handlers(tmp_path: Path) -> None:
    async with make_pool(tmp_path, size=2) as pool:
        sock, port = bind_unused_port()
        server = HTTPServer(Application([("/a", _AsyncHandler), ("/c", _ClassicHandler)], pool=pool))
        server.add_sockets([sock])
        try:
            client = AsyncHTTPClient()
            got = await asyncio.gather(*[client.fetch("http://127.0.0.1:%d/%s?v=%d" % (port, p, i))
                                         for i in range(10) for p in "ac"])
            assert sorted(r.body.decode() for r in got) == sorted(
                "%d-%s" % (i, s) for i in range(10) for s in ("async", "classic"))
        finally:
            server.stop()
            await server.close_all_connections()
