"""Pool: API, fairness, cancellation, health and release rules (real server)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, List

import pymysql
import pytest
from tornado import gen

from tornpool.errors import (
    CommandTimeout,
    ConnectionLost,
    ConnectionReleased,
    DSNError,
    ForeignConnection,
    OperationalError,
    PoolClosed,
    PoolTimeout,
    PoolTooManyWaiters,
    ProgrammingError,
)
from tornpool.pool import Pool
from tornpool.dsn import parse_dsn
from tornpool.pool import STATS_KEYS


def admin(dsn: str) -> Any:
    p = parse_dsn(dsn)
    return pymysql.connect(host=p.get("host", "127.0.0.1"), port=p.get("port", 3306),
                           user=p.get("user", "root"), password=p.get("password", ""),
                           database=p.get("database"), autocommit=True)


def kill(dsn: str, thread_id: int) -> None:
    c = admin(dsn)
    try:
        c.cursor().execute("KILL %d" % thread_id)
    finally:
        c.close()


def assert_consistent(pool: Pool) -> None:
    s = pool.stats()
    assert s["requests_waiting"] == 0
    assert not pool.engine.leases()
    assert s["pool_size"] <= s["pool_max"]


# -- basics ---------------------------------------------------------------------------


def test_constructor_touches_no_loop(mariadb_dsn: str) -> None:
    pool = Pool(mariadb_dsn, size=2)
    assert pool.loop is None
    assert pool.size == 2 and pool.max_size == 2
    with pytest.raises(ValueError):
        Pool(mariadb_dsn, size=3, max_size=2)


@pytest.mark.gen_test
async def test_execute_and_conveniences(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=2, max_size=4) as pool:
        assert pool.stats()["pool_size"] == 2
        cur = await pool.execute("SELECT %s + 1", (41,))
        assert cur.fetchall() == ((42,),)
        cur = await pool.execute("SELECT '100%'")  # no params: no interpolation
        assert cur.fetchone() == ("100%",)
        await pool.ping()
        await pool.execute("CREATE TEMPORARY TABLE IF NOT EXISTS t_noop (a INT)")
        with pytest.raises(ProgrammingError):
            await pool.execute("SELEC 1")
        assert_consistent(pool)


@pytest.mark.gen_test
async def test_gen_coroutine_yield(mariadb_dsn: str) -> None:
    pool = Pool(mariadb_dsn, size=1)

    @gen.coroutine
    def legacy() -> Any:
        yield pool.connect()
        cur = yield pool.execute("SELECT 7")
        conn = yield pool.getconn()
        with pool.manage(conn):
            cur2 = yield conn.execute("SELECT 8")
        cursors = yield pool.transaction(["SELECT 1", ("SELECT %s", (2,))])
        yield pool.close()
        return cur.fetchone()[0], cur2.fetchone()[0], len(cursors)

    assert (await legacy()) == (7, 8, 2)


@pytest.mark.gen_test
async def test_transaction_forms(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1) as pool:
        await pool.execute("CREATE TABLE IF NOT EXISTS pool_tx (id INT PRIMARY KEY) ENGINE=InnoDB")
        await pool.execute("DELETE FROM pool_tx")
        curs = await pool.transaction(["INSERT INTO pool_tx VALUES (1)",
                                       ("INSERT INTO pool_tx VALUES (%s)", (2,)),
                                       "SELECT COUNT(*) FROM pool_tx"])
        assert len(curs) == 3 and curs[2].fetchone() == (2,)
        with pytest.raises(pymysql.err.IntegrityError):
            await pool.transaction(["INSERT INTO pool_tx VALUES (3)", "INSERT INTO pool_tx VALUES (1)"])
        assert (await pool.execute("SELECT COUNT(*) FROM pool_tx")).fetchone() == (2,)
        with pytest.raises(RuntimeError):
            async with pool.transaction() as conn:
                await conn.execute("INSERT INTO pool_tx VALUES (4)")
                raise RuntimeError("boom")
        async with pool.transaction() as conn:
            await conn.execute("INSERT INTO pool_tx VALUES (5)")
        cur = await pool.execute("SELECT id FROM pool_tx ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1, 2, 5]
        await pool.execute("DROP TABLE pool_tx")
        assert_consistent(pool)


@pytest.mark.gen_test
async def test_setsession_and_configure(mariadb_dsn: str) -> None:
    seen: List[int] = []

    async def configure(conn: Any) -> None:
        seen.append(conn.thread_id)

    async with Pool(mariadb_dsn, size=2, setsession=["SET time_zone = '+05:00'"],
                    configure=configure) as pool:
        cur = await pool.execute("SELECT @@session.time_zone")
        assert cur.fetchone() == ("+05:00",)
        assert len(seen) == 2
    # a failing setsession: the connection is not used, connect() raises
    with pytest.raises(pymysql.err.MySQLError):
        await Pool(mariadb_dsn, size=1, setsession=["SET nonsense_var = 1"]).connect()


@pytest.mark.gen_test
async def test_stats_and_prometheus(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=3, name="statpool") as pool:
        await asyncio.gather(*[pool.execute("SELECT SLEEP(0.05)") for _ in range(4)])
        s = pool.stats()
        assert tuple(s) == STATS_KEYS
        assert s["requests_num"] >= 4 and s["requests_queued"] >= 1
        assert s["connections_num"] >= 2 and s["usage_ms"] > 0
        text = pool.prometheus()
        assert 'tornpool_pool_max{pool="statpool"} 3' in text
        assert "# TYPE tornpool_requests_num_total counter" in text
        pool.stats(reset=True)
        assert pool.stats()["requests_num"] == 0


# -- contract 1: fairness and cancellation --------------------------------------------


@pytest.mark.gen_test
async def test_fifo_and_no_handback_to_releaser(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        order: List[int] = []
        first = await pool.getconn()

        async def waiter(i: int) -> None:
            async with pool.acquire() as c:
                order.append(i)
                await c.execute("SELECT 1")

        tasks = []
        for i in range(5):
            tasks.append(asyncio.ensure_future(waiter(i)))
            await asyncio.sleep(0.01)
        # the releasing coroutine asks again at once: it must queue behind the waiters
        pool.putconn(first)
        again = asyncio.ensure_future(waiter(99))
        await asyncio.gather(*tasks, again)
        assert order == [0, 1, 2, 3, 4, 99]
        assert_consistent(pool)


@pytest.mark.gen_test
async def test_timed_out_or_cancelled_waiter_never_served(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        held = await pool.getconn()
        t0 = time.monotonic()
        with pytest.raises(PoolTimeout):
            await pool.getconn(timeout=0.1)
        assert 0.08 < time.monotonic() - t0 < 0.5
        cancelled = asyncio.ensure_future(pool.getconn())
        late = asyncio.ensure_future(pool.getconn(timeout=5))
        await asyncio.sleep(0.02)
        cancelled.cancel()
        await asyncio.sleep(0)
        pool.putconn(held)
        conn = await late
        assert cancelled.cancelled()
        pool.putconn(conn)
        assert pool.stats()["requests_errors"] == 1
        assert_consistent(pool)


@pytest.mark.gen_test
async def test_waiter_deadlines_out_of_arrival_order(mariadb_dsn: str) -> None:
    # Waiters share one deadline timer: each must still fail at its own
    # deadline when deadlines and queue order differ, and served waiters'
    # deadlines must not fire on anyone.
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        held = await pool.getconn()
        t0 = time.monotonic()

        async def request(timeout: float) -> Any:
            try:
                conn = await pool.getconn(timeout=timeout)
            except PoolTimeout:
                return "timeout", time.monotonic() - t0
            await asyncio.sleep(0.01)
            pool.putconn(conn)
            return "served", time.monotonic() - t0

        first = asyncio.ensure_future(request(5.0))
        short = asyncio.ensure_future(request(0.15))
        shorter = asyncio.ensure_future(request(0.05))
        last = asyncio.ensure_future(request(0.6))
        kind, at = await shorter
        assert kind == "timeout" and 0.045 < at < 0.14
        assert not short.done()
        kind, at = await short
        assert kind == "timeout" and 0.145 < at < 0.4
        pool.putconn(held)  # to `first` (the head of the queue), then to `last`
        assert (await first)[0] == "served"
        assert (await last)[0] == "served"
        assert pool.stats()["requests_errors"] == 2
        assert_consistent(pool)
        # the timer stops once no waiter is left to time out
        await asyncio.sleep(0.7)
        assert not pool.engine.deadline_timer_armed


@pytest.mark.gen_test
async def test_served_and_cancelled_in_same_turn_passes_connection_on(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        held = await pool.getconn()
        a = asyncio.ensure_future(pool.getconn())
        b = asyncio.ensure_future(pool.getconn())
        await asyncio.sleep(0.01)
        pool.putconn(held)  # resolves a's future...
        a.cancel()          # ...but a is cancelled before it runs
        conn = await asyncio.wait_for(b, 2)
        assert a.cancelled()
        pool.putconn(conn)
        assert pool.stats()["pool_available"] == 1
        assert_consistent(pool)


@pytest.mark.gen_test(timeout=30)
async def test_cancellation_storm_leaks_nothing(mariadb_dsn: str) -> None:
    import random

    rnd = random.Random(7)
    async with Pool(mariadb_dsn, size=2, max_size=4) as pool:
        async def worker() -> None:
            async with pool.acquire(timeout=rnd.choice([0.001, 0.02, 1.0])) as c:
                await c.execute("SELECT SLEEP(%s)", (rnd.choice([0, 0.01, 0.03]),))

        for _ in range(4):
            tasks = [asyncio.ensure_future(worker()) for _ in range(60)]
            await asyncio.sleep(rnd.random() * 0.03)
            for t in rnd.sample(tasks, 20):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        s = pool.stats()
        assert s["pool_size"] <= 4
        assert_consistent(pool)
        # every counted connection is usable
        res = await asyncio.gather(*[pool.execute("SELECT 1") for _ in range(8)])
        assert all(r.fetchone() == (1,) for r in res)


@pytest.mark.gen_test
async def test_max_waiting(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_waiting=2) as pool:
        held = await pool.getconn()
        w = [asyncio.ensure_future(pool.getconn(timeout=2)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(PoolTooManyWaiters):
            await pool.getconn()
        pool.putconn(held)
        for f in w:
            pool.putconn(await f)
        assert_consistent(pool)


# -- contract 3: growth ----------------------------------------------------------------


@pytest.mark.gen_test
async def test_parallel_queries_run_in_parallel_and_stretch_to_cap(mariadb_dsn: str) -> None:
    # Momoko: N x SLEEP(1) takes ~1 s, not N s; the pool stretches, but not beyond max_size
    async with Pool(mariadb_dsn, size=1, max_size=5) as pool:
        t0 = time.monotonic()
        await asyncio.gather(*[pool.execute("SELECT SLEEP(0.5)") for _ in range(5)])
        assert time.monotonic() - t0 < 1.4
        assert pool.stats()["pool_size"] == 5
        await asyncio.gather(*[pool.execute("SELECT SLEEP(0.1)") for _ in range(12)])
        assert pool.stats()["pool_size"] == 5


@pytest.mark.gen_test
async def test_no_stretch_when_not_needed(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=2, max_size=6) as pool:
        for _ in range(20):
            await asyncio.gather(pool.execute("SELECT 1"), pool.execute("SELECT 1"))
        assert pool.stats()["pool_size"] == 2


@pytest.mark.gen_test
async def test_queries_before_connect_resolves(mariadb_dsn: str) -> None:
    pool = Pool(mariadb_dsn, size=2)
    fut = asyncio.ensure_future(pool.connect())
    cur = await pool.execute("SELECT 3")
    assert cur.fetchone() == (3,)
    await fut
    await pool.close()


@pytest.mark.gen_test
async def test_lazy_pool_without_connect(mariadb_dsn: str) -> None:
    pool = Pool(mariadb_dsn, size=0, max_size=2)
    assert (await pool.execute("SELECT 1")).fetchone() == (1,)
    await pool.close()


# -- contract 4: health ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_idle_connection_killed_is_replaced_invisibly(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, check_idle=0.1) as pool:
        tid = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0]
        await asyncio.get_running_loop().run_in_executor(None, kill, mariadb_dsn, tid)
        await asyncio.sleep(0.2)
        tid2 = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0]
        assert tid2 != tid
        assert pool.stats()["connections_lost"] >= 1


@pytest.mark.gen_test
async def test_wait_timeout_replaced_invisibly(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=2, check_idle=0.5,
                    setsession=["SET SESSION wait_timeout = 1"]) as pool:
        await pool.execute("SELECT 1")
        await asyncio.sleep(1.6)
        res = await asyncio.gather(*[pool.execute("SELECT 1") for _ in range(2)])
        assert [r.fetchone() for r in res] == [(1,), (1,)]


@pytest.mark.gen_test
async def test_max_lifetime_max_uses_and_shrink(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_uses=3) as pool:
        ids = [(await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0] for _ in range(6)]
        assert ids[0] == ids[1] == ids[2] != ids[3]
    async with Pool(mariadb_dsn, size=1, max_lifetime=0.2) as pool:
        a = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0]
        await asyncio.sleep(0.3)
        b = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0]
        assert a != b
    async with Pool(mariadb_dsn, size=1, max_size=4, max_idle=0.2) as pool:
        # Long enough sleeps that background growth (one connect at a time)
        # reaches 4 before the first one is released, even on a slow machine.
        await asyncio.gather(*[pool.execute("SELECT SLEEP(1)") for _ in range(4)])
        assert pool.stats()["pool_size"] == 4
        for _ in range(40):  # idle connections beyond `size` go after max_idle
            await asyncio.sleep(0.1)
            if pool.stats()["pool_size"] == 1:
                break
        assert pool.stats()["pool_size"] == 1


@pytest.mark.gen_test
async def test_fatal_error_evicts(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1) as pool:
        async with pool.acquire() as c:
            tid = c.thread_id
            task = asyncio.ensure_future(c.execute("SELECT SLEEP(5)"))
            await asyncio.sleep(0.1)
            await asyncio.get_running_loop().run_in_executor(None, kill, mariadb_dsn, tid)
            with pytest.raises(ConnectionLost) as lost:
                await task
            assert lost.value.args[0] in (1927, 2013)  # connection killed / lost
        tid2 = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0]
        assert tid2 != tid
        assert_consistent(pool)


# -- contract 5: release ----------------------------------------------------------------


@pytest.mark.gen_test
async def test_release_rolls_back_open_transaction(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1) as pool:
        await pool.execute("CREATE TABLE IF NOT EXISTS pool_rb (id INT) ENGINE=InnoDB")
        await pool.execute("DELETE FROM pool_rb")
        conn = await pool.getconn()
        await conn.begin()
        await conn.execute("INSERT INTO pool_rb VALUES (1)")
        assert conn.in_transaction
        pool.putconn(conn)
        async with pool.acquire() as c2:
            assert not c2.in_transaction
            assert (await c2.execute("SELECT COUNT(*) FROM pool_rb")).fetchone() == (0,)
        assert pool.stats()["returns_bad"] == 1
        await pool.execute("DROP TABLE pool_rb")


@pytest.mark.gen_test
async def test_released_mid_query_or_unread_result_is_closed(mariadb_dsn: str) -> None:
    from tornpool.cursors import SSCursor

    async with Pool(mariadb_dsn, size=1) as pool:
        conn = await pool.getconn()
        tid = conn.thread_id
        cur = await conn.execute("SELECT * FROM information_schema.collations", cursor=SSCursor)
        pooled = conn.connection
        assert pooled.has_unread_result
        pool.putconn(conn)
        assert pooled.closed
        del cur
        conn = await pool.getconn()
        assert conn.thread_id != tid
        pooled = conn.connection
        task = asyncio.ensure_future(conn.execute("SELECT SLEEP(2)"))
        await asyncio.sleep(0.05)
        pool.putconn(conn)
        assert pooled.closed
        with pytest.raises(ConnectionLost):
            await task
        assert (await pool.execute("SELECT 1")).fetchone() == (1,)
        assert pool.stats()["returns_bad"] == 2
        assert_consistent(pool)


@pytest.mark.gen_test
async def test_use_after_release_raises(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1) as pool:
        async with pool.acquire() as conn:
            pass
        with pytest.raises(ConnectionReleased):
            await conn.execute("SELECT 1")
        with pytest.raises(ConnectionReleased):
            conn.connection
        assert conn.closed
        with pytest.raises(ConnectionReleased):
            pool.putconn(conn)


@pytest.mark.gen_test
async def test_leak_warning_names_acquirer(mariadb_dsn: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="tornpool.pool")
    async with Pool(mariadb_dsn, size=1, leak_threshold=0.1) as pool:
        conn = await pool.getconn()
        await asyncio.sleep(0.35)
        pool.putconn(conn)
    text = caplog.text
    assert "leak" in text and "test_leak_warning_names_acquirer" in text


@pytest.mark.gen_test
async def test_command_timeout_closes_connection(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=2) as pool:
        (before,) = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()
        with pytest.raises(CommandTimeout):
            await pool.execute("SELECT SLEEP(3)", timeout=0.2)
        # the connection that ran it is gone -- on the server too (reaped) --
        # and another one serves
        (after,) = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()
        assert after != before
        for _ in range(100):
            cur = await pool.execute(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s", (before,))
            if cur.fetchone() == (0,):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the timed-out connection is still on the server")
        assert pool.stats()["connections_lost"] >= 1
        assert_consistent(pool)


# -- contract 7: bad input -----------------------------------------------------------------


@pytest.mark.gen_test
async def test_bad_dsn_and_credentials(mariadb_dsn: str) -> None:
    with pytest.raises(DSNError):
        await Pool("postgres://nope", size=1).connect()
    p = parse_dsn(mariadb_dsn)
    bad = Pool(host=p["host"], port=p["port"], user="no_such_user_x", password="x",
               size=1, timeout=5)
    t0 = time.monotonic()
    with pytest.raises(OperationalError) as ei:
        await bad.connect()
    assert ei.value.args[0] == 1045
    assert bad.closed
    # a lazy pool: waiters fail at once with the permanent error, not at their deadline
    lazy = Pool(host=p["host"], port=p["port"], user="no_such_user_x", password="x",
                size=0, max_size=1, timeout=5)
    with pytest.raises(OperationalError):
        await lazy.execute("SELECT 1")
    assert time.monotonic() - t0 < 3
    await lazy.close()


@pytest.mark.gen_test
async def test_closed_pool_foreign_conn_double_close(mariadb_dsn: str) -> None:
    pool = await Pool(mariadb_dsn, size=1).connect()
    other = await Pool(mariadb_dsn, size=1).connect()
    oc = await other.getconn()
    with pytest.raises(ForeignConnection):
        pool.putconn(oc)
    with pytest.raises(ForeignConnection):
        pool.putconn(object())
    other.putconn(oc)
    waiter_holder = await pool.getconn()
    waiter = asyncio.ensure_future(pool.getconn())
    await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(pool.close(timeout=1))
    with pytest.raises(PoolClosed):
        await waiter
    pool.putconn(waiter_holder)
    await closing
    with pytest.raises(PoolClosed):
        await pool.getconn()
    with pytest.raises(PoolClosed):
        await pool.close()
    assert pool.stats()["pool_size"] == 0
    await other.close()


# -- resize / drain / sync face -------------------------------------------------------------


@pytest.mark.gen_test
async def test_resize_and_drain(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=2) as pool:
        pool.resize(3, 4)
        await pool.engine.wait_filled(5)
        assert pool.stats()["pool_size"] == 3
        # every connection the pool has now, seen by three overlapping queries
        curs = await asyncio.gather(*[pool.execute("SELECT CONNECTION_ID(), SLEEP(0.05)")
                                      for _ in range(3)])
        before = {c.fetchone()[0] for c in curs}
        assert len(before) == 3
        await pool.drain()
        curs = await asyncio.gather(*[pool.execute("SELECT CONNECTION_ID(), SLEEP(0.05)")
                                      for _ in range(3)])
        after = {c.fetchone()[0] for c in curs}
        assert not after & before  # all replaced
        pool.resize(1, 1)
        await asyncio.sleep(0.1)
        assert pool.stats()["pool_size"] <= 1


def test_sync_face_background_loop(mariadb_dsn: str) -> None:
    import threading

    pool = Pool(mariadb_dsn, size=2, max_size=4)
    sp = pool.sync()
    sp.connect()
    results: List[Any] = []

    def work() -> None:
        with sp.connection() as conn:
            results.append(conn.execute("SELECT SLEEP(0.05), 1").fetchone()[1])
        results.append(sp.execute("SELECT 2").fetchone()[0])

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1] * 6 + [2] * 6
    with sp.transaction() as conn:
        assert conn.execute("SELECT @@in_transaction").fetchone() == (1,)
    assert pool.stats()["pool_size"] <= 4
    sp.close()
    assert pool.closed


@pytest.mark.gen_test
async def test_sync_face_from_worker_threads_on_running_loop(mariadb_dsn: str) -> None:
    from tornpool.errors import WrongEventLoop

    async with Pool(mariadb_dsn, size=1, max_size=2) as pool:
        sp = pool.sync()
        loop = asyncio.get_running_loop()

        def work(i: int) -> Any:
            with sp.connection(timeout=5) as conn:
                return conn.execute("SELECT %s", (i,)).fetchone()[0]

        results = await asyncio.gather(*[loop.run_in_executor(None, work, i) for i in range(5)])
        assert sorted(results) == [0, 1, 2, 3, 4]
        with pytest.raises(WrongEventLoop):  # blocking call on the loop thread would deadlock
            sp.execute("SELECT 1")
        assert pool.stats()["pool_size"] <= 2
        assert_consistent(pool)


def test_pool_bound_to_one_loop(mariadb_dsn: str) -> None:
    from tornpool.errors import WrongEventLoop

    pool = Pool(mariadb_dsn, size=1)

    async def first() -> None:
        await pool.connect()

    async def second() -> None:
        with pytest.raises(WrongEventLoop):
            await pool.getconn()

    loop1 = asyncio.new_event_loop()
    loop2 = asyncio.new_event_loop()
    try:
        loop1.run_until_complete(first())
        loop2.run_until_complete(second())
        loop1.run_until_complete(pool.close())
    finally:
        loop1.close()
        loop2.close()


@pytest.mark.gen_test
async def test_growth_only_while_waiters_outnumber_connects(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=8) as pool:
        held = await pool.getconn()
        w = asyncio.ensure_future(pool.getconn())
        await asyncio.sleep(0)
        # one waiter -> at most one connect in flight, whatever the headroom
        assert pool.engine.connecting <= 1
        got = await w
        pool.putconn(got)
        pool.putconn(held)
        assert pool.stats()["pool_size"] == 2


@pytest.mark.gen_test(timeout=20)
async def test_abandoned_connection_is_killed_on_the_server_before_it_stops_counting(
    mariadb_dsn: str,
) -> None:
    # A statement cut off by its timeout keeps running on the server; the pool
    # KILLs it through another pooled connection and keeps counting it until
    # the server no longer lists it -- long before SLEEP(30) would end.
    async with Pool(mariadb_dsn, size=2, max_size=2) as pool:
        async with pool.acquire() as c:
            victim = c.thread_id
            with pytest.raises(CommandTimeout):
                await c.execute("SELECT SLEEP(30)", timeout=0.1)
        t0 = time.monotonic()
        while pool.engine.reaping:
            await asyncio.sleep(0.01)
        assert time.monotonic() - t0 < 5
        cur = await pool.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s",
                                 (victim,))
        assert cur.fetchone() == (0,)
        assert_consistent(pool)


@pytest.mark.gen_test(timeout=20)
async def test_cap_one_waits_reap_timeout_for_an_abandoned_connection(mariadb_dsn: str) -> None:
    # max_size=1 and the only connection abandoned mid-statement: no other
    # connection may exist to KILL it, so the pool keeps it counted for
    # reap_timeout (trusting the server to have dropped it by then), and
    # only then opens a replacement (documented in docs/pool.md).
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        with pytest.raises(CommandTimeout):
            await pool.execute("SELECT SLEEP(1)", timeout=0.1)
        assert pool.engine.reaping == 1
        t0 = time.monotonic()
        assert (await pool.execute("SELECT 1", timeout=5)).fetchone() == (1,)
        waited = time.monotonic() - t0
        assert 1.5 <= waited < 4.0  # reap_timeout is 2 s
        assert pool.stats()["pool_size"] == 1
        assert_consistent(pool)


@pytest.mark.gen_test
async def test_close_terminates_held_connections_after_timeout(mariadb_dsn: str) -> None:
    pool = await Pool(mariadb_dsn, size=1).connect()
    conn = await pool.getconn()
    t0 = time.monotonic()
    await pool.close(timeout=0.2)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(ConnectionReleased):
        await conn.execute("SELECT 1")
    assert pool.stats()["pool_size"] == 0


@pytest.mark.gen_test(timeout=20)
async def test_a_statement_longer_than_the_acquire_timeout_is_not_cut_off(mariadb_dsn: str) -> None:
    # The pool's timeout bounds the wait for a connection; once the statement
    # runs, only its own timeout (none here) applies.
    async with Pool(mariadb_dsn, size=1, max_size=1, timeout=0.5) as pool:
        held = await pool.getconn()
        queued = asyncio.ensure_future(pool.execute("SELECT SLEEP(1), 7"))
        await asyncio.sleep(0.1)
        pool.putconn(held)  # served after 0.1 s, runs for 1 s
        assert (await queued).fetchone() == (0, 7)
        assert pool.stats()["requests_errors"] == 0
        assert_consistent(pool)
