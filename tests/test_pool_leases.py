"""Leases and what hangs off them: cursors that outlive a lease, leases under
``yield``, leaks, the retry of statements that never reached the server,
logging -- against the real server."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from typing import Any

import pytest
from pymysql.constants import CLIENT
from tornado import gen

from tornpool import Pool, PoolConnection
from tornpool.errors import ConnectionReleased, OperationalError
from tornpool.pool.lease import SITE_DEPTH, capture_site
from tornpool.testing import FaultProxy, MariaDBServer


# -- a cursor outlives its lease ------------------------------------------------------


@pytest.mark.gen_test
async def test_pool_execute_cursor_holds_every_result_set_and_no_connection(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1, client_flag=CLIENT.MULTI_STATEMENTS) as pool:
        cur = await pool.execute("SELECT 1; SELECT 2, 3; SELEC nonsense")
        # another task takes the one connection meanwhile
        async with pool.acquire() as other:
            assert cur.fetchall() == ((1,),)
            assert await cur.nextset() is True
            assert cur.fetchall() == ((2, 3),)
            with pytest.raises(Exception) as later:  # the third statement's error
                await cur.nextset()
            assert later.value.args[0] == 1064
            assert await cur.nextset() is False
            assert (await other.execute("SELECT 4")).fetchone() == (4,)
        with pytest.raises(ConnectionReleased):
            cur.connection


@pytest.mark.gen_test
async def test_lease_cursors_die_with_the_lease_but_keep_their_rows(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1, client_flag=CLIENT.MULTI_STATEMENTS) as pool:
        lease = await pool.getconn()
        cur = await lease.execute("SELECT 1; SELECT 2")
        dbcur = lease.cursor()
        await dbcur.execute("SELECT 5")
        pool.putconn(lease)
        assert cur.fetchall() == ((1,),)  # buffered rows stay readable
        with pytest.raises(ConnectionReleased):
            await cur.nextset()  # ... but the connection is someone else's now
        assert await dbcur.fetchone() == (5,)
        with pytest.raises(ConnectionReleased):
            await dbcur.execute("SELECT 6")
        # the next lease is unharmed: the unread result set was drained
        async with pool.acquire() as c:
            assert (await c.execute("SELECT 7")).fetchone() == (7,)


@pytest.mark.gen_test
async def test_streaming_cursor_after_release_is_refused(mariadb_dsn: str) -> None:
    import tornpool

    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        lease = await pool.getconn()
        cur = await lease.execute("SELECT seq FROM seq_1_to_10000", cursor=tornpool.SSCursor)
        assert await cur.fetchone() == (1,)
        pool.putconn(lease)  # an unfinished stream: the connection is replaced
        with pytest.raises(ConnectionReleased):
            await cur.fetchone()
        assert (await pool.execute("SELECT 1")).fetchone() == (1,)


# -- yield under @gen.coroutine scopes a connection ----------------------------------------


@pytest.mark.gen_test
async def test_yield_acquire_is_a_context_manager_that_releases(mariadb_dsn: str) -> None:
    pool = Pool(mariadb_dsn, size=1, max_size=1)

    @gen.coroutine
    def handler() -> Any:
        yield pool.connect()
        with (yield pool.acquire()) as conn:
            cur = yield conn.execute("SELECT 21 * 2")
            inside = pool.stats()["pool_available"]
        after = pool.stats()["pool_available"]
        with (yield pool.getconn()) as conn2:
            yield conn2.ping()
        return cur.fetchone(), inside, after, conn.released, conn2.released

    row, inside, after, released, released2 = await handler()
    assert row == (42,) and inside == 0 and after == 1 and released and released2
    await pool.close()


@pytest.mark.gen_test
async def test_yield_transaction_commits_explicitly_and_rolls_back_otherwise(mariadb_dsn: str) -> None:
    pool = await Pool(mariadb_dsn, size=1, max_size=1).connect()
    yield_ok = False
    await pool.execute("CREATE TABLE IF NOT EXISTS lease_tx (v INT) ENGINE=InnoDB")
    await pool.execute("DELETE FROM lease_tx")

    @gen.coroutine
    def handler() -> Any:
        nonlocal yield_ok
        with (yield pool.transaction()) as tx:
            assert tx.in_transaction
            yield tx.execute("INSERT INTO lease_tx VALUES (1)")
            yield tx.commit()
        try:
            with (yield pool.transaction()) as tx:
                yield tx.execute("INSERT INTO lease_tx VALUES (2)")
                raise KeyError("handler failed")
        except KeyError:
            pass
        with (yield pool.transaction()) as tx:  # no commit: rolled back on exit
            yield tx.execute("INSERT INTO lease_tx VALUES (3)")
        async_cursors = yield pool.transaction(["INSERT INTO lease_tx VALUES (4)"])
        yield_ok = len(async_cursors) == 1

    await handler()
    assert yield_ok
    cur = await pool.execute("SELECT v FROM lease_tx ORDER BY v")
    assert cur.fetchall() == ((1,), (4,))
    await pool.execute("DROP TABLE lease_tx")
    await pool.close()


@pytest.mark.gen_test
async def test_every_public_call_yields_under_gen_coroutine(mariadb_dsn: str) -> None:
    import tornpool

    @gen.coroutine
    def run() -> Any:
        pool = Pool(mariadb_dsn, size=1, max_size=2)
        yield pool.connect()
        out = []
        out.append((yield pool.execute("SELECT %s", (1,))).fetchone())
        yield pool.execute("CREATE TEMPORARY TABLE IF NOT EXISTS t (a INT)")
        yield pool.ping()
        cur = yield pool.executemany("SELECT %s", [(1,), (2,)])
        out.append(cur.rowcount)
        yield pool.execute("DROP PROCEDURE IF EXISTS lease_p")
        yield pool.execute("CREATE PROCEDURE lease_p(x INT) SELECT x + 1")
        out.append((yield pool.callproc("lease_p", (5,))).fetchone())
        conn = yield pool.getconn()
        with pool.manage(conn):
            out.append((yield conn.execute("SELECT 2")).fetchone())
            yield conn.begin()
            yield conn.rollback()
            yield conn.autocommit(True)
            yield conn.select_db(conn.connection.raw.db.decode() if isinstance(conn.connection.raw.db, bytes) else conn.connection.raw.db)
            out.append((yield conn.executemany("SELECT %s", [(3,)])).rowcount)
            out.append((yield conn.callproc("lease_p", (6,))).fetchone())
            dbcur = conn.cursor(tornpool.DictCursor)
            yield dbcur.execute("SELECT 3 AS x")
            out.append((yield dbcur.fetchall()))
            yield dbcur.close()
        lease = yield pool.acquire()
        pool.putconn(lease)
        cursors = yield pool.transaction([("SELECT %s", (9,))])
        out.append(cursors[0].fetchone())
        c = yield tornpool.connect(mariadb_dsn)
        out.append((yield c.execute("SELECT 10")).fetchone())
        yield c.begin()
        yield c.commit()
        yield c.ping()
        yield c.close()
        yield pool.execute("DROP PROCEDURE lease_p")
        yield pool.close()
        return out

    assert await run() == [(1,), 2, (6,), (2,), 1, (7,), [{"x": 3}], (9,), (10,)]


# -- leaks -----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_dropped_lease_is_reclaimed_with_a_warning_naming_its_acquirer(
    mariadb_dsn: str, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="tornpool.pool")
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:

        async def leak() -> None:
            lease = await pool.getconn()
            await lease.execute("SELECT 1")
            # ... and forget to give it back

        await leak()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await asyncio.sleep(0)  # the loop's last handle let go of the lease
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) and "never released" in str(w.message)
                   for w in caught)
        await asyncio.sleep(0.01)  # the connection comes back on the loop
        assert pool.stats()["pool_available"] == 1
        assert "leaked lease" in caplog.text and "in leak" in caplog.text
        assert (await pool.execute("SELECT 1", timeout=1)).fetchone() == (1,)


@pytest.mark.gen_test
async def test_close_names_the_leases_it_gave_up_on(mariadb_dsn: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="tornpool.pool")
    pool = await Pool(mariadb_dsn, size=1).connect()

    async def hold_it() -> Any:
        return await pool.getconn()

    held = await hold_it()
    await pool.close(timeout=0.2)
    assert "gave up waiting for 1 connection" in caplog.text
    assert "in hold_it" in caplog.text
    assert held.released


# -- retry of what never reached the server; health --------------------------------------


@pytest.mark.gen_test
async def test_a_statement_that_never_reached_the_server_is_retried(
    throwaway_mariadb: MariaDBServer,
) -> None:
    with FaultProxy.for_server(throwaway_mariadb) as proxy:
        pool = Pool(proxy.dsn_for(throwaway_mariadb.dsn), size=1, max_size=1, check_idle=None)
        await pool.connect()
        (first,) = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()
        # The link dies while the connection sits idle; the loop has not run
        # since, so the pool does not know yet.  Writing the statement fails
        # in the kernel: it provably never reached the server, and the pool
        # runs it on a fresh connection instead of failing the caller.
        proxy.reset_all()
        cur = await pool.execute("SELECT CONNECTION_ID()")
        assert cur.fetchone()[0] != first
        assert pool.stats()["connections_lost"] >= 1
        await pool.close()


@pytest.mark.gen_test
async def test_an_idle_connection_whose_ping_fails_is_replaced(
    throwaway_mariadb: MariaDBServer,
) -> None:
    with FaultProxy.for_server(throwaway_mariadb) as proxy:
        pool = Pool(proxy.dsn_for(throwaway_mariadb.dsn), size=1, max_size=1, check_idle=0.05,
                    timeout=5)
        await pool.connect()
        (first,) = (await pool.execute("SELECT CONNECTION_ID()")).fetchone()
        await asyncio.sleep(0.1)
        proxy.blackhole()  # the idle connection's ping will get no answer
        pool.engine.check_timeout = 0.3
        task = asyncio.ensure_future(pool.execute("SELECT CONNECTION_ID()"))
        await asyncio.sleep(0.5)
        proxy.pass_through()  # new connections work again
        (second,) = (await task).fetchone()
        assert second != first
        assert pool.stats()["connections_lost"] >= 1
        await pool.close()


@pytest.mark.gen_test
async def test_reset_hook_runs_on_every_return(mariadb_dsn: str) -> None:
    seen: list[int] = []

    async def reset(conn: Any) -> None:
        seen.append(conn.thread_id)
        await conn.execute("SET @after_reset = 1")

    async with Pool(mariadb_dsn, size=1, max_size=1, reset=reset) as pool:
        async with pool.acquire() as c:
            tid = c.thread_id
        async with pool.acquire() as c:
            assert (await c.execute("SELECT @after_reset")).fetchone() == (1,)
        async with pool.acquire() as c:
            pass
    assert seen == [tid, tid, tid]  # the last one ran before close() finished


# -- logging -----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_failed_connect_raises_and_does_not_claim_to_retry(mariadb_dsn: str, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="tornpool")
    from tornpool import parse_dsn

    p = parse_dsn(mariadb_dsn)
    pool = Pool(host=p["host"], port=p["port"], user="root", password="wrong", size=1)
    with pytest.raises(OperationalError) as refused:
        await pool.connect()
    assert refused.value.args[0] == 1045
    assert pool.closed
    assert "retrying" not in caplog.text


def test_library_logs_go_through_logging_only() -> None:
    import tornpool

    handlers = logging.getLogger("tornpool").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert tornpool.__name__ == "tornpool"


@pytest.mark.gen_test
async def test_a_missing_attribute_names_the_class_the_user_holds(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1) as pool:
        async with pool.acquire() as conn:
            assert isinstance(conn, PoolConnection)
            with pytest.raises(AttributeError) as missing:
                conn.no_such_method  # type: ignore[attr-defined]
            assert "'PoolConnection' object has no attribute 'no_such_method'" in str(missing.value)


@pytest.mark.gen_test
async def test_result_sets_left_on_the_wire_are_drained_not_the_connection_closed(
    mariadb_dsn: str,
) -> None:
    # A CALL always ends with a status result the caller never reads; the
    # connection is drained on release and kept (it used to be closed).
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        await pool.execute("CREATE OR REPLACE PROCEDURE lease_twice(x INT) BEGIN SELECT x; SELECT x * 2; END")
        ids = set()
        for i in range(3):
            cur = await pool.callproc("lease_twice", (i,))
            assert cur.fetchall() == ((i,),)
            ids.add((await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0])
        assert len(ids) == 1 and pool.stats()["returns_bad"] == 0
        await pool.execute("DROP PROCEDURE lease_twice")
    # The error of a later statement a lease never read is that lease's: the
    # next lease must not get it.
    async with Pool(mariadb_dsn, size=1, max_size=1, client_flag=CLIENT.MULTI_STATEMENTS) as pool:
        async with pool.acquire() as c:
            first = c.thread_id
            assert (await c.execute("SELECT 1; SELEC broken")).fetchall() == ((1,),)
        async with pool.acquire() as c:
            assert c.thread_id == first
            assert (await c.execute("SELECT 9")).fetchone() == (9,)



# -- where a lease was acquired ------------------------------------------------------------


def _site_names(site: Any) -> list[str]:
    return [code.co_name for code, _line in site]


@pytest.mark.gen_test
async def test_acquire_site_is_the_callers_await_chain_without_loop_frames() -> None:
    async def handler_inner() -> list[str]:
        return _site_names(capture_site())

    async def handler_outer() -> list[str]:
        return await handler_inner()

    # innermost first, up to SITE_DEPTH; the walk stops where asyncio's own
    # frames (Handle._run, run_forever, ...) begin
    assert await handler_outer() == [
        "handler_inner", "handler_outer", "test_acquire_site_is_the_callers_await_chain_without_loop_frames"]

    @gen.coroutine
    def legacy_handler() -> Any:
        yield gen.moment
        return _site_names(capture_site())

    # a generator coroutine is resumed by tornado's runner: only its own frame
    assert (yield_names := await legacy_handler()) == ["legacy_handler"], yield_names

    async def deep(n: int) -> list[str]:
        return await deep(n - 1) if n else _site_names(capture_site())

    assert await deep(5) == ["deep"] * SITE_DEPTH
