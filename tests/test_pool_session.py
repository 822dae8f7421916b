"""Every lease starts in the session the pool configured, and nothing a lease
commits is lost -- against the real server.

Each test holds one connection in the pool (size=max_size=1) so that the
next lease is provably the same server session (same CONNECTION_ID()).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tornpool import Pool
from tornpool.errors import MySQLError, ProgrammingError


async def _one(pool_or_conn: Any, sql: str) -> Any:
    return (await pool_or_conn.execute(sql)).fetchone()


async def _questions(conn: Any) -> int:
    """Statements the server counted for this session (reset by
    COM_RESET_CONNECTION, so it tells whether a reset happened)."""
    return int((await conn.execute("SHOW SESSION STATUS LIKE 'Questions'")).fetchone()[1])


@pytest.mark.gen_test
async def test_autocommit_and_user_variable_do_not_leak_and_writes_are_kept(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        await pool.execute("CREATE TABLE IF NOT EXISTS sess_kept (v INT) ENGINE=InnoDB")
        await pool.execute("DELETE FROM sess_kept")
        async with pool.acquire() as c:
            first = c.thread_id
            await c.autocommit(False)
            await c.execute("SET @leak = 42")
        # the reproduction: the next lease saw (0, 42), and its INSERT
        # was rolled back when that lease was released
        async with pool.acquire() as c:
            assert c.thread_id == first  # same server session, restored
            assert (await c.execute("SELECT @@autocommit, @leak")).fetchone() == (1, None)
        cur = await pool.execute("INSERT INTO sess_kept VALUES (1)")
        assert cur.rowcount == 1
        assert await _one(pool, "SELECT COUNT(*) FROM sess_kept") == (1,)
        await pool.execute("DROP TABLE sess_kept")


@pytest.mark.gen_test
async def test_database_time_zone_isolation_temp_tables_prepared_and_locks_are_reset(
    mariadb_dsn: str,
) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        (db,) = await _one(pool, "SELECT DATABASE()")
        (iso,) = await _one(pool, "SELECT @@session.tx_isolation")
        async with pool.acquire() as c:
            first = c.thread_id
            await c.execute("USE information_schema")
            await c.execute("SET time_zone = '+03:00'")
            await c.execute("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            await c.execute("CREATE TEMPORARY TABLE test.sess_tmp (a INT)")
            await c.execute("PREPARE sess_stmt FROM 'SELECT 1'")
            assert await _one(c, "SELECT GET_LOCK('sess_lock', 0)") == (1,)
            assert c.session_dirty
        async with pool.acquire() as c:
            assert c.thread_id == first
            assert not c.session_dirty
            assert await _one(c, "SELECT DATABASE()") == (db,)
            assert await _one(c, "SELECT @@session.time_zone") == ("SYSTEM",)
            assert await _one(c, "SELECT @@session.tx_isolation") == (iso,)
            assert await _one(c, "SELECT IS_USED_LOCK('sess_lock') IS NULL") == (1,)
            with pytest.raises(ProgrammingError) as gone:
                await c.execute("SELECT * FROM test.sess_tmp")
            assert gone.value.args[0] == 1146  # the temporary table went
            with pytest.raises(MySQLError) as unknown:
                await c.execute("EXECUTE sess_stmt")
            assert unknown.value.args[0] == 1243  # unknown prepared statement


@pytest.mark.gen_test
async def test_setsession_and_configure_survive_a_reset(mariadb_dsn: str) -> None:
    configured = []

    async def configure(conn: Any) -> None:
        configured.append(conn.thread_id)
        await conn.execute("SET @configured = 'yes'")

    async with Pool(mariadb_dsn, size=1, max_size=1, setsession=["SET time_zone = '+05:00'"],
                    configure=configure, charset="utf8mb4") as pool:
        async with pool.acquire() as c:
            await c.execute("SET time_zone = '+01:00'")
            await c.execute("SET NAMES latin1")
            await c.execute("SET @configured = 'changed'")
        async with pool.acquire() as c:
            assert await _one(c, "SELECT @@session.time_zone, @configured, @@character_set_client") \
                == ("+05:00", "yes", "utf8mb4")
        assert len(configured) == 2 and len(set(configured)) == 1  # once at connect, once after the reset


@pytest.mark.gen_test
async def test_a_lease_that_changed_nothing_costs_no_reset(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        async with pool.acquire() as c:
            for _ in range(30):
                await c.execute("SELECT 1")
            before = await _questions(c)
            assert not c.session_dirty
        async with pool.acquire() as c:
            # no COM_RESET_CONNECTION in between: the session's counter went on
            assert await _questions(c) > before
            await c.execute("SET @x = 1")
        async with pool.acquire() as c:
            # reset: the counter started again (the baseline's few statements)
            assert await _questions(c) < 30


@pytest.mark.gen_test
async def test_returned_inside_a_transaction_is_rolled_back_and_logged_with_the_acquirer(
    mariadb_dsn: str, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="tornpool.pool")
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        await pool.execute("CREATE TABLE IF NOT EXISTS sess_tx (v INT) ENGINE=InnoDB")
        await pool.execute("DELETE FROM sess_tx")
        lease = await pool.getconn()
        await lease.begin()
        await lease.execute("INSERT INTO sess_tx VALUES (1)")
        pool.putconn(lease)
        assert await _one(pool, "SELECT COUNT(*) FROM sess_tx") == (0,)
        assert pool.stats()["returns_bad"] == 1
        text = caplog.text
        assert "returned inside a transaction" in text
        assert "test_returned_inside_a_transaction_is_rolled_back" in text  # where it was acquired
        await pool.execute("DROP TABLE sess_tx")


@pytest.mark.gen_test
async def test_a_block_that_raises_rolls_back_quietly(mariadb_dsn: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="tornpool.pool")
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        with pytest.raises(ZeroDivisionError):
            async with pool.acquire() as c:
                await c.begin()
                1 / 0
        assert not (await pool.getconn()).in_transaction
        assert "returned inside a transaction" not in caplog.text


@pytest.mark.gen_test
async def test_without_session_tracking_every_lease_is_reset(mariadb_dsn: str) -> None:
    # session_track=False: the server cannot say what changed, so the pool
    # restores the session after every lease (documented fallback).
    async with Pool(mariadb_dsn, size=1, max_size=1, session_track=False) as pool:
        async with pool.acquire() as c:
            assert c.session_dirty  # unknown counts as changed
            for _ in range(30):
                await c.execute("SELECT 1")
        async with pool.acquire() as c:
            assert await _questions(c) < 30


@pytest.mark.gen_test
async def test_session_reset_never_keeps_state_but_still_rolls_back(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=1, session_reset="never") as pool:
        async with pool.acquire() as c:
            await c.execute("SET @kept = 7")
            await c.begin()
        async with pool.acquire() as c:
            assert await _one(c, "SELECT @kept") == (7,)
            assert not c.in_transaction


@pytest.mark.gen_test
async def test_a_server_without_reset_gets_changed_connections_replaced(
    mariadb_dsn: str, monkeypatch: Any
) -> None:
    # Servers older than MariaDB 10.2.4 / MySQL 5.7.3 lack COM_RESET_CONNECTION;
    # the documented fallback closes a changed connection and opens another.
    from tornpool.connection import Connection

    monkeypatch.setattr(Connection, "can_reset", property(lambda self: False))
    async with Pool(mariadb_dsn, size=1, max_size=1) as pool:
        async with pool.acquire() as c:
            first = c.thread_id
            await c.execute("SELECT 1")
        async with pool.acquire() as c:
            assert c.thread_id == first  # unchanged: kept
            await c.execute("SET @x = 1")
        async with pool.acquire() as c:
            assert c.thread_id != first
            assert await _one(c, "SELECT @x") == (None,)
