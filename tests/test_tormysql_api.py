"""tornpool.tormysql's surface (TORMYSQL_API.md) and the TorMySQL defects it
does not reproduce: the cap under load (#43), connections left open after
``close()``, per-query timeouts (#39, in test_tormysql_unstable.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

import tornpool
import tornpool.tormysql as tormysql
from test_pool_faults import ServerCounter
from test_tormysql_util import USER, TorMySQLServer, blocking, tormysql_server, wait_count
from tornpool.tormysql import helpers
from tornpool.tormysql.cursor import SSCursor


@pytest.fixture(scope="module")
def tserver() -> Iterator[TorMySQLServer]:
    with tormysql_server() as server:
        yield server


@pytest.fixture(autouse=True)
def nothing_left_open(tserver: TorMySQLServer) -> Iterator[None]:
    """Every test leaves the server without connections of ours."""
    yield
    tserver.assert_none_left()


# -- names -----------------------------------------------------------------------------------

NAMES = ["Client", "Cursor", "DictCursor", "SSCursor", "SSDictCursor", "ConnectionPool",
         "CursorNotReadAllDataError", "CursorNotIterError", "ConnectionPoolClosedError",
         "ConnectionPoolUsedError", "ConnectionNotFoundError", "ConnectionNotUsedError",
         "ConnectionUsedError", "WaitConnectionTimeoutError", "set_log", "helpers", "version",
         "version_info", "connect", "Connection"]


def test_every_top_level_name() -> None:
    for name in NAMES:
        assert hasattr(tormysql, name), name
    assert tormysql.version == "0.4.3" and tormysql.version_info == (0, 4, 3)
    assert tormysql.Connection is tormysql.connect
    assert tormysql.pool.ConnectionNotFoundError is tormysql.ConnectionNotFoundError
    assert tormysql.cursor.SSDictCursor is tormysql.SSDictCursor
    assert helpers.TransactionClosedError and helpers.Transaction


def test_exceptions_are_typed_by_blame() -> None:
    errors = tornpool.errors
    assert issubclass(tormysql.WaitConnectionTimeoutError, errors.PoolTimeout)
    assert issubclass(tormysql.ConnectionPoolClosedError, errors.PoolClosed)
    assert issubclass(tormysql.ConnectionPoolUsedError, errors.PoolError)
    assert issubclass(tormysql.ConnectionUsedError, errors.PoolError)
    assert issubclass(tormysql.ConnectionNotFoundError, errors.ForeignConnection)
    assert issubclass(tormysql.ConnectionNotUsedError, errors.ConnectionReleased)
    for misuse in (tormysql.CursorNotReadAllDataError, tormysql.CursorNotIterError,
                   helpers.TransactionClosedError):
        assert issubclass(misuse, errors.InterfaceError)


def test_pool_options_and_pymysql_arguments(tserver: TorMySQLServer) -> None:
    pool = tormysql.ConnectionPool(max_connections=7, idle_seconds=0, wait_connection_timeout=2,
                                   debug_connection_used=True, **tserver.params())
    assert (pool.native.max_size, pool.native.timeout, pool.closed) == (7, 2.0, False)
    assert pool.autocommit is False  # PyMySQL's default, so TorMySQL's
    with pytest.raises(TypeError, match="positional"):
        tormysql.Client("h", "u", "p", "db", 3306, "extra")
    with pytest.raises(tormysql.ConnectionPoolClosedError):
        pool.close()
        pool.Connection()


@pytest.mark.gen_test(timeout=20)
async def test_positional_arguments_and_dsn(tserver: TorMySQLServer) -> None:
    port = tserver.server.port
    for client in (tormysql.Client("127.0.0.1", USER, "", "test", port),
                   tormysql.Client(f"mysql://{USER}@127.0.0.1:{port}/test")):
        await client.connect()
        try:
            cursor = client.cursor()
            await cursor.execute("SELECT DATABASE(), CURRENT_USER()")
            assert cursor.fetchone() == ("test", f"{USER}@%")
        finally:
            await client.close()


# -- Client ---------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_client_futures(tserver: TorMySQLServer) -> None:
    client = await tormysql.connect(**tserver.params(client_flag=CLIENT.MULTI_STATEMENTS))
    try:
        assert client.open and not client.autocommit_mode and client.get_autocommit() is False
        assert (client.host, client.port, client.charset) == ("127.0.0.1", tserver.server.port, "utf8")
        assert isinstance(client.thread_id(), int) and "MariaDB" in client.get_server_info()
        await client.autocommit(True)
        assert client.autocommit_mode
        assert await client.query("CREATE TEMPORARY TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)") == 0
        assert await client.query("INSERT INTO t VALUES (), (), ()") == 3
        assert client.insert_id() == 1  # MySQL reports the first id of a multi-row insert
        assert await client.query("SELECT 1; SELECT 2, 3") == 1
        assert await client.next_result() == 1
        assert await client.next_result() is None
        assert await client.select_db("mysql") is None
        cursor = client.cursor()
        await cursor.execute("SELECT DATABASE()")
        assert cursor.fetchone() == ("mysql",)
        await client.begin()
        await client.rollback()
        assert await client.ping() is None
        assert client.escape("it's") == "'it\\'s'" and client.escape_string("a'b") == "a\\'b"
        with pytest.raises(AttributeError, match="not available"):
            client.affected_rows  # noqa: B018 - a PyMySQL method, not offered
    finally:
        await client.close()
    assert not client.open


@pytest.mark.gen_test(timeout=20)
async def test_client_kill_and_ping_reconnect(tserver: TorMySQLServer) -> None:
    victim = await tormysql.connect(**tserver.params())
    killer = await tormysql.connect(**tserver.params())
    try:
        old_id = victim.thread_id()
        await killer.kill(old_id)
        await asyncio.sleep(0.05)
        cursor = victim.cursor()
        with pytest.raises(pymysql.err.OperationalError):
            await cursor.execute("SELECT 1")
        with pytest.raises(tornpool.errors.ConnectionClosed):
            await victim.ping(reconnect=False)
        await victim.ping()  # reconnect=True: a new connection
        assert victim.open and victim.thread_id() != old_id
    finally:
        await victim.close()
        await killer.close()


@pytest.mark.gen_test(timeout=20)
async def test_client_context_managers(tserver: TorMySQLServer) -> None:
    client = await tormysql.connect(**tserver.params())
    try:
        with client as cursor:
            assert isinstance(cursor, tormysql.Cursor)
            await cursor.execute("SELECT 1")
        async with client as cursor:  # commits
            await cursor.execute("INSERT INTO test (id, data) VALUES (-1, 'client-with')")
        with pytest.raises(RuntimeError):
            async with client as cursor:  # rolls back
                await cursor.execute("INSERT INTO test (id, data) VALUES (-2, 'client-with')")
                raise RuntimeError()
        assert await blocking(tserver.query, "SELECT id FROM test WHERE id < 0") == ((-1,),)
    finally:
        await blocking(tserver.query, "DELETE FROM test WHERE id < 0")
        await client.close()


# -- cursors --------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_buffered_cursor(tserver: TorMySQLServer) -> None:
    client = await tormysql.connect(**tserver.params())
    try:
        cursor = client.cursor(tormysql.DictCursor)
        assert await cursor.execute("SELECT id, data FROM test WHERE id < %s ORDER BY id", 3) == 3
        assert cursor.fetchone() == {"id": 0, "data": "row 0"}
        assert cursor.fetchmany(1) == [{"id": 1, "data": "row 1"}]  # a list, as PyMySQL's DictCursor
        cursor.scroll(0, mode="absolute")
        assert [r["id"] for r in cursor] == [0, 1, 2]
        assert cursor.rowcount == 3 and cursor.description[0][0] == "id"
        assert cursor.mogrify("SELECT %s", ("x",)) == "SELECT 'x'"
        assert await cursor.executemany("INSERT INTO test (id, data) VALUES (%s, %s)",
                                        [(-1, "a"), (-2, "b")]) == 2
        await cursor.close()
        with pytest.raises(pymysql.err.ProgrammingError, match="closed"):
            await cursor.execute("SELECT 1")
        assert [r["id"] async for r in cursor] == []  # consumed
    finally:
        await client.rollback()
        await client.close()


@pytest.mark.gen_test(timeout=20)
async def test_callproc(tserver: TorMySQLServer) -> None:
    client = await tormysql.connect(**tserver.params(autocommit=True))
    try:
        cursor = client.cursor()
        await cursor.execute("CREATE OR REPLACE PROCEDURE square(IN n INT) SELECT n * n")
        assert await cursor.callproc("square", (21,)) == (21,)
        assert cursor.fetchall() == ((441,),)
    finally:
        await client.close()


@pytest.mark.gen_test(timeout=20)
async def test_callproc_later_result_set_arriving_late(tserver: TorMySQLServer) -> None:
    client = await tormysql.connect(**tserver.params(autocommit=True))
    try:
        cursor = client.cursor()
        await cursor.execute("CREATE OR REPLACE PROCEDURE late(IN n INT) "
                             "BEGIN SELECT n; DO SLEEP(0.05); SELECT n * 2; END")
        assert await cursor.callproc("late", (21,)) == (21,)
        assert cursor.fetchall() == ((21,),)
        await asyncio.sleep(0.2)  # the second result set arrives meanwhile, unasked
        assert await cursor.nextset() is True
        assert cursor.fetchall() == ((42,),)
    finally:
        await client.close()


@pytest.mark.gen_test(timeout=20)
async def test_with_cursor_refuses_to_drop_unread_result_sets(tserver: TorMySQLServer) -> None:
    client = await tormysql.connect(**tserver.params(client_flag=CLIENT.MULTI_STATEMENTS))
    try:
        with pytest.raises(tormysql.CursorNotReadAllDataError):
            with client.cursor() as cursor:
                await cursor.execute("SELECT 1; SELECT 2")
        with client.cursor() as cursor:  # read them all: fine
            await cursor.execute("SELECT 1; SELECT 2")
            assert await cursor.nextset() is True
            assert cursor.fetchall() == ((2,),)
            assert await cursor.nextset() is None
    finally:
        await client.close()


@pytest.mark.gen_test(timeout=20)
async def test_streaming_cursor(tserver: TorMySQLServer) -> None:
    client = await tormysql.connect(**tserver.params())
    try:
        cursor = client.cursor(tormysql.SSDictCursor)
        await cursor.execute("SELECT id FROM test ORDER BY id")
        assert await cursor.fetchone() == {"id": 0}
        assert await cursor.read_next() == {"id": 1}
        assert await cursor.fetchmany(2) == [{"id": 2}, {"id": 3}]
        await cursor.scroll(6)
        assert (await cursor.fetchone())["id"] == 10
        with pytest.raises(tormysql.CursorNotIterError):
            iter(cursor)
        with pytest.raises(pymysql.err.InterfaceError, match="async with"):
            with cursor:
                pass
        ids = [row["id"] async for row in cursor]
        assert ids == list(range(11, 2000))
        await cursor.close()
        plain = client.cursor(SSCursor)
        async with plain:
            await plain.execute("SELECT id FROM test")
            assert await plain.fetchone() == (0,)
        other = client.cursor()  # the stream was closed: the connection is usable
        await other.execute("SELECT 5")
        assert other.fetchall() == ((5,),)
    finally:
        await client.close()


def test_cursor_classes_map_pymysql_and_tornpool_ones() -> None:
    from tornpool.tormysql.cursor import cursor_class

    assert cursor_class(pymysql.cursors.SSDictCursor) is tormysql.SSDictCursor
    assert cursor_class(tornpool.DictCursor) is tormysql.DictCursor
    with pytest.raises(pymysql.err.InterfaceError, match="unsupported"):
        cursor_class(dict)


# -- pool connections ------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_pool_connection_lifecycle(tserver: TorMySQLServer) -> None:
    pool = tormysql.ConnectionPool(max_connections=2, **tserver.params())
    other = tormysql.ConnectionPool(max_connections=1, **tserver.params())
    try:
        conn = await pool.Connection()
        assert conn.used_time <= time.time() and conn.idle_time == conn.used_time
        assert str(pool).endswith("<0,1>")
        with pytest.raises(tormysql.ConnectionUsedError):
            pool.close_connection(conn)
        with pytest.raises(tormysql.ConnectionNotFoundError):
            other.release_connection(conn)
        await conn.close()
        assert conn.idle_time >= conn.used_time and str(pool).endswith("<1,0>")
        with pytest.raises(tormysql.ConnectionNotUsedError):
            pool.release_connection(conn)
        await pool.close_connection(conn)  # idle: closed now
        assert await wait_count(tserver, 0) == 0
        again = await pool.connect()
        with again:
            assert isinstance(again, tormysql.Client) and again.open
        assert not again.open  # given back: this handle is done
    finally:
        await pool.close()
        await other.close()


@pytest.mark.gen_test(timeout=20)
async def test_async_with_commits_or_rolls_back(tserver: TorMySQLServer) -> None:
    pool = tormysql.ConnectionPool(max_connections=2, **tserver.params())
    try:
        async with await pool.Connection() as conn:
            async with conn.cursor() as cursor:
                await cursor.execute("INSERT INTO test (id, data) VALUES (-10, 'committed')")
        with pytest.raises(KeyError):
            async with await pool.Connection() as conn:
                async with conn.cursor() as cursor:
                    await cursor.execute("INSERT INTO test (id, data) VALUES (-11, 'rolled back')")
                raise KeyError()
        assert await blocking(tserver.query, "SELECT id FROM test WHERE id < 0") == ((-10,),)
    finally:
        await blocking(tserver.query, "DELETE FROM test WHERE id < 0")
        await pool.close()


@pytest.mark.gen_test(timeout=20)
async def test_connection_given_back_in_a_transaction_is_rolled_back(
        tserver: TorMySQLServer, caplog: pytest.LogCaptureFixture) -> None:
    """TorMySQL handed the open transaction to the next user; tornpool rolls
    it back and says so."""
    pool = tormysql.ConnectionPool(max_connections=1, **tserver.params())
    try:
        conn = await pool.Connection()
        cursor = conn.cursor()
        await cursor.execute("INSERT INTO test (id, data) VALUES (-20, 'uncommitted')")
        conn.close()
        assert "returned inside a transaction; rolled back" in caplog.text
        conn = await pool.Connection()
        cursor = conn.cursor()
        await cursor.execute("SELECT COUNT(*) FROM test WHERE id = -20")
        assert cursor.fetchone() == (0,)
        conn.close()
    finally:
        await pool.close()


@pytest.mark.gen_test(timeout=20)
async def test_wait_connection_timeout(tserver: TorMySQLServer) -> None:
    pool = tormysql.ConnectionPool(max_connections=1, wait_connection_timeout=0.3, **tserver.params())
    try:
        held = await pool.Connection()
        start = time.monotonic()
        with pytest.raises(tormysql.WaitConnectionTimeoutError):
            await pool.Connection()
        assert 0.25 < time.monotonic() - start < 1.5
        held.close()
    finally:
        await pool.close()


@pytest.mark.gen_test(timeout=20)
async def test_close_fails_waiters_and_waits_for_connections(tserver: TorMySQLServer) -> None:
    pool = tormysql.ConnectionPool(max_connections=1, **tserver.params())
    held = await pool.Connection()
    waiter = pool.Connection()
    await asyncio.sleep(0.05)
    closing = pool.close()
    with pytest.raises(tormysql.ConnectionPoolClosedError):
        await waiter
    with pytest.raises(tormysql.ConnectionPoolClosedError):
        pool.close()
    await asyncio.sleep(0.1)
    assert not closing.done()  # still in use
    held.close()
    await asyncio.wait_for(closing, 5)
    assert await wait_count(tserver, 0) == 0


@pytest.mark.gen_test(timeout=20)
async def test_close_timeout_terminates_and_fails(tserver: TorMySQLServer, caplog: pytest.LogCaptureFixture) -> None:
    """close(timeout) with a connection still in use: it is terminated (none
    left open, unlike TorMySQL), and the Future fails with ConnectionPoolUsedError."""
    pool = tormysql.ConnectionPool(max_connections=2, debug_connection_used=True, **tserver.params())
    held = await pool.Connection()
    cursor = held.cursor()
    await cursor.execute("SELECT 'remember me'")
    assert held.get_last_query_sql() == b"SELECT 'remember me'"
    start = time.monotonic()
    with pytest.raises(tormysql.ConnectionPoolUsedError):
        await pool.close(timeout=0.3)
    assert time.monotonic() - start < 2
    assert "remember me" in caplog.text
    assert await wait_count(tserver, 0) == 0


@pytest.mark.gen_test(timeout=20)
async def test_set_log(tserver: TorMySQLServer) -> None:
    records: list[str] = []

    class Log:
        def warning(self, msg: str, *args: Any) -> None:
            records.append(msg % args)

        error = warning

    tormysql.set_log(Log())
    try:
        pool = helpers.ConnectionPool(max_connections=1, **tserver.params())
        tx = await pool.begin()
        with tx:
            pass  # left without commit or rollback
        assert records and "has not committed or rollbacked" in records[0]
        await tx.rollback()
        await pool.close()
    finally:
        tormysql.set_log(logging.getLogger("tornpool.tormysql"))


# -- helpers --------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_helpers_execute_commits_without_autocommit(tserver: TorMySQLServer) -> None:
    for autocommit in (False, True):
        pool = helpers.ConnectionPool(max_connections=2, **tserver.params(autocommit=autocommit))
        try:
            cursor = await pool.execute("INSERT INTO test (id, data) VALUES (%s, %s)", (-30, "helper"))
            assert cursor.rowcount == 1
            cursor = await pool.executemany("INSERT INTO test (id, data) VALUES (%s, %s)",
                                            [(-31, "a"), (-32, "b")])
            assert cursor.rowcount == 2
            rows = await blocking(tserver.query, "SELECT id FROM test WHERE id < 0 ORDER BY id")
            assert rows == ((-32,), (-31,), (-30,))
            with pytest.raises(pymysql.err.ProgrammingError):
                await pool.execute("SELECT nonsense FROM")
            with pytest.raises(pymysql.err.InterfaceError, match="buffered"):
                await pool.execute("SELECT 1", cursor_cls=SSCursor)
        finally:
            await blocking(tserver.query, "DELETE FROM test WHERE id < 0")
            await pool.close()


@pytest.mark.gen_test(timeout=20)
async def test_transaction(tserver: TorMySQLServer) -> None:
    pool = helpers.ConnectionPool(max_connections=2, **tserver.params())
    try:
        tx = await pool.begin()
        await tx.execute("INSERT INTO test (data) VALUES (%s)", "1")  # a lone parameter, as users pass it
        await tx.executemany("INSERT INTO test (id, data) VALUES (%s, %s)", [(-40, "x")])
        await tx.rollback()
        with pytest.raises(helpers.TransactionClosedError):
            await tx.execute("SELECT 1")
        with pytest.raises(helpers.TransactionClosedError):
            await tx.commit()
        async with await pool.begin() as tx:
            await tx.execute("INSERT INTO test (id, data) VALUES (-41, 'kept')")
        with pytest.raises(ZeroDivisionError):
            async with await pool.begin() as tx:
                await tx.execute("INSERT INTO test (id, data) VALUES (-42, 'dropped')")
                1 / 0
        rows = await blocking(tserver.query, "SELECT id FROM test WHERE id < 0 OR data = '1'")
        assert rows == ((-41,),)
    finally:
        await blocking(tserver.query, "DELETE FROM test WHERE id < 0")
        await pool.close()


@pytest.mark.gen_test(timeout=20)
async def test_dropped_transaction_is_logged_and_closed(tserver: TorMySQLServer,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    pool = helpers.ConnectionPool(max_connections=1, **tserver.params())
    try:
        tx = await pool.begin()
        await tx.execute("INSERT INTO test (id, data) VALUES (-50, 'never committed')")
        del tx
        gc.collect()
        assert "Transaction has not committed or rollbacked" in caplog.text
        cursor = await pool.execute("SELECT COUNT(*) FROM test WHERE id = -50")
        assert cursor.fetchone() == (0,)
    finally:
        await pool.close()


# -- the defects TorMySQL users hit ------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_cap_holds_under_load_and_nothing_stays_open(tserver: TorMySQLServer) -> None:
    """TorMySQL #43: 18-20 server connections with max_connections=10 under
    load, some left open after close().  Here: 200 requests on 10."""
    pool = helpers.ConnectionPool(max_connections=10, wait_connection_timeout=30, **tserver.params())
    with ServerCounter(tserver.server, USER) as counter:
        async def one(i: int) -> int:
            if i % 3 == 0:
                async with await pool.Connection() as conn:
                    async with conn.cursor() as cursor:
                        await cursor.execute("SELECT SLEEP(0.01), %s", (i,))
                        return int(cursor.fetchone()[1])
            cursor = await pool.execute("SELECT SLEEP(0.01), %s", (i,))
            return int(cursor.fetchone()[1])

        assert await asyncio.gather(*[one(i) for i in range(200)]) == list(range(200))
        await pool.close()
    assert counter.samples > 20
    assert counter.max == 10, "the server saw %d connections" % counter.max
    assert await wait_count(tserver, 0, timeout=2) == 0


@pytest.mark.gen_test(timeout=20)
async def test_pool_connection_ping_reconnect_swaps_in_a_live_one(tserver: TorMySQLServer) -> None:
    pool = tormysql.ConnectionPool(max_connections=2, **tserver.params())
    try:
        conn = await pool.Connection()
        dead_id = conn.thread_id()
        await blocking(tserver.query, "KILL %d" % dead_id)
        await asyncio.sleep(0.05)
        assert not conn.open
        await conn.ping()  # reconnect=True
        assert conn.open and conn.thread_id() != dead_id
        cursor = conn.cursor()
        await cursor.execute("SELECT 1")
        assert cursor.fetchall() == ((1,),)
        conn.close()
        assert str(pool).endswith("<1,0>")
    finally:
        await pool.close()


def test_close_outside_the_loop_finishes_there(tserver: TorMySQLServer) -> None:
    """TorMySQL tests closed pools in tearDown, with no loop running."""
    loop = asyncio.new_event_loop()
    try:
        pool = helpers.ConnectionPool(max_connections=3, **tserver.params())

        async def use() -> None:
            await asyncio.gather(*[pool.execute("SELECT SLEEP(0.05)") for _ in range(3)])

        loop.run_until_complete(asyncio.wait_for(use(), 20))
        assert tserver.count() == 3
        fut = pool.close()
        assert fut.done() and fut.exception() is None
        tserver.assert_none_left()
    finally:
        loop.close()


def test_close_outside_the_loop_does_not_wait_for_a_connection_nobody_can_return(
    tserver: TorMySQLServer,
) -> None:
    """A test that failed while holding a connection, then ``pool.close()`` in
    tearDown with the loop idle: nobody can give that connection back while
    close runs the loop, so close terminates it instead of waiting forever
    (TorMySQL's own suite hung here on the facade before)."""
    loop = asyncio.new_event_loop()
    try:
        pool = tormysql.ConnectionPool(max_connections=2, **tserver.params())

        async def hold() -> Any:
            conn = await pool.Connection()
            await conn.cursor().execute("SELECT 1")
            return conn  # ... and never closed

        held = loop.run_until_complete(asyncio.wait_for(hold(), 20))
        assert tserver.count() == 1
        t0 = time.monotonic()
        fut = pool.close()
        assert time.monotonic() - t0 < 5
        assert fut.done() and isinstance(fut.exception(), tormysql.ConnectionPoolUsedError)
        tserver.assert_none_left()
        del held
    finally:
        loop.close()


@pytest.mark.gen_test(timeout=20)
async def test_closing_a_cursor_reads_what_callproc_left(tserver: TorMySQLServer) -> None:
    """TorMySQL's cursor.close() read the result sets left unread; so does
    the facade's, and the pool connection goes back reusable.  ``with
    cursor:`` refuses to drop them, as TorMySQL's did."""
    pool = tormysql.ConnectionPool(max_connections=1, autocommit=True, **tserver.params())
    try:
        async with await pool.Connection() as conn:
            async with conn.cursor() as cursor:
                await cursor.execute("CREATE OR REPLACE PROCEDURE two_sets() BEGIN SELECT 1; SELECT 2; END")
            before = conn.thread_id()
            async with conn.cursor() as cursor:
                await cursor.callproc("two_sets")
                assert cursor.fetchall() == ((1,),)
            with pytest.raises(tormysql.CursorNotReadAllDataError):
                with conn.cursor() as cursor:
                    await cursor.callproc("two_sets")
            await cursor.close()
        async with await pool.Connection() as conn:
            assert conn.thread_id() == before
        assert pool.native.stats()["returns_bad"] == 0
    finally:
        await pool.close()
