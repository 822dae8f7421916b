"""The async Connection against a real MariaDB: queries, cursors, transactions,
errors, timeouts, concurrency rules, non-blocking proofs."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc

import pymysql
import pytest
from tornado import gen
from tornado.ioloop import IOLoop

import tornpool
from tornpool import errors


async def _one(conn: tornpool.Connection, sql: str, args: object = None) -> object:
    cur = await conn.execute(sql, args)
    return cur.fetchone()


@pytest.mark.gen_test
async def test_select_and_cursor_attributes(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        cur = await conn.execute("SELECT 1 AS a, 'x' AS b UNION SELECT 2, 'y'")
        assert cur.rowcount == 2
        assert [d[0] for d in cur.description] == ["a", "b"]
        assert cur.fetchone() == (1, "x")
        assert cur.fetchall() == ((2, "y"),)
        assert cur.fetchone() is None
        assert conn.thread_id > 0
        assert "MariaDB" in conn.server_version or conn.server_version[0].isdigit()
        assert not conn.busy and not conn.closed
    assert conn.closed


@pytest.mark.gen_test
async def test_args_dict_cursor_and_iteration(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        cur = await conn.execute("SELECT %(n)s AS n, %(x)s AS s", {"n": 5, "x": "it's"})
        assert cur.fetchone() == (5, "it's")
        cur = await conn.execute("SELECT 1 AS a, 2 AS b", cursor=tornpool.DictCursor)
        assert cur.fetchall() == [{"a": 1, "b": 2}]
        cur = await conn.execute("SELECT 1 UNION SELECT 2 UNION SELECT 3")
        assert [r for r in cur] == [(1,), (2,), (3,)]
        assert conn.mogrify("SELECT %s", ("a'b",)) == "SELECT 'a\\'b'"


@pytest.mark.gen_test
async def test_dict_cursorclass_from_connect(dsn: str) -> None:
    async with await tornpool.connect(dsn, cursorclass=pymysql.cursors.DictCursor) as conn:
        assert (await conn.execute("SELECT 7 AS seven")).fetchone() == {"seven": 7}


@pytest.mark.gen_test
async def test_dml_rowcount_lastrowid_executemany(dsn: str) -> None:
    async with await tornpool.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TEMPORARY TABLE t_dml (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))")
        cur = await conn.execute("INSERT INTO t_dml (v) VALUES (%s)", ("a",))
        assert cur.rowcount == 1 and cur.lastrowid == 1
        cur = await conn.executemany("INSERT INTO t_dml (v) VALUES (%s)", [("b",), ("c",), ("d",)])
        assert cur.rowcount == 3
        cur = await conn.execute("UPDATE t_dml SET v = 'z' WHERE id > 2")
        assert cur.rowcount == 2
        assert await _one(conn, "SELECT COUNT(*) FROM t_dml WHERE v = 'z'") == (2,)


@pytest.mark.gen_test
async def test_transactions_commit_rollback_and_context(dsn: str) -> None:
    async with await tornpool.connect(dsn, autocommit=False) as conn:
        await conn.execute("CREATE TEMPORARY TABLE t_tx (v INT) ENGINE=InnoDB")
        await conn.begin()
        await conn.execute("INSERT INTO t_tx VALUES (1)")
        assert conn.in_transaction
        await conn.rollback()
        assert not conn.in_transaction
        assert await _one(conn, "SELECT COUNT(*) FROM t_tx") == (0,)

        async with conn.transaction():
            await conn.execute("INSERT INTO t_tx VALUES (2)")
        assert await _one(conn, "SELECT SUM(v) FROM t_tx") == (2,)

        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await conn.execute("INSERT INTO t_tx VALUES (100)")
                1 / 0
        assert not conn.in_transaction
        assert await _one(conn, "SELECT SUM(v) FROM t_tx") == (2,)


@pytest.mark.gen_test
async def test_multiple_result_sets_and_callproc(dsn: str) -> None:
    from pymysql.constants import CLIENT

    async with await tornpool.connect(dsn, client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True) as conn:
        cur = await conn.execute("SELECT 1; SELECT 2, 3; SELECT 'x'")
        assert cur.fetchall() == ((1,),)
        assert await cur.nextset() is True
        assert cur.fetchall() == ((2, 3),)
        assert await cur.nextset() is True
        assert cur.fetchall() == (("x",),)
        assert await cur.nextset() is False

        await conn.execute("DROP PROCEDURE IF EXISTS tp_twice")
        await conn.execute(
            "CREATE PROCEDURE tp_twice(IN x INT) BEGIN SELECT x * 2 AS d; SELECT x * 3 AS t; END"
        )
        try:
            cur = await conn.callproc("tp_twice", (21,))
            assert cur.fetchall() == ((42,),)
            assert await cur.nextset()
            assert cur.fetchall() == ((63,),)
            # a new command drains what is left (the procedure's status result)
            assert await _one(conn, "SELECT 5") == (5,)
        finally:
            await conn.execute("DROP PROCEDURE IF EXISTS tp_twice")


@pytest.mark.gen_test
async def test_ping_and_select_db(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        await conn.ping()
        await conn.select_db("information_schema")
        assert await _one(conn, "SELECT DATABASE()") == ("information_schema",)


# -- non-blocking proofs --------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_loop_keeps_ticking_during_sleep_query(dsn: str) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    async with await tornpool.connect(dsn) as conn:
        task = asyncio.ensure_future(ticker())
        await conn.execute("SELECT SLEEP(1)")
        task.cancel()
    # A blocked loop would allow 0 or 1 tick; a free one about 20.
    assert ticks >= 10


@pytest.mark.gen_test(timeout=60)
async def test_twenty_sleeps_overlap(dsn: str) -> None:
    conns = await asyncio.gather(*[tornpool.connect(dsn) for _ in range(20)])
    try:
        start = time.monotonic()
        results = await asyncio.gather(*[c.execute("SELECT SLEEP(1)") for c in conns])
        elapsed = time.monotonic() - start
        assert [r.fetchone() for r in results] == [(0,)] * 20
        # Sequential would take 20 s; generous bound for a loaded 2-core CI box.
        assert elapsed < 5.0, elapsed
    finally:
        for c in conns:
            await c.close()


# -- concurrency rules, timeouts, cancellation ------------------------------------


@pytest.mark.gen_test
async def test_second_command_while_busy_is_typed_error(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        first = asyncio.ensure_future(conn.execute("SELECT SLEEP(0.3)"))
        await asyncio.sleep(0.05)
        assert conn.busy
        with pytest.raises(errors.ConnectionBusy):
            await conn.execute("SELECT 1")
        assert (await first).fetchone() == (0,)
        assert await _one(conn, "SELECT 2") == (2,)


@pytest.mark.gen_test
async def test_command_timeout_closes_connection(dsn: str) -> None:
    conn = await tornpool.connect(dsn)
    start = time.monotonic()
    with pytest.raises(errors.CommandTimeout) as info:
        await conn.execute("SELECT SLEEP(5)", timeout=0.3)
    assert time.monotonic() - start < 3
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, errors.OperationalError)
    assert conn.closed
    with pytest.raises(errors.ConnectionLost):
        await conn.execute("SELECT 1")


@pytest.mark.gen_test
async def test_read_timeout_is_default_command_timeout(dsn: str) -> None:
    conn = await tornpool.connect(dsn, read_timeout=0.3)
    with pytest.raises(errors.CommandTimeout):
        await conn.execute("SELECT SLEEP(3)")
    assert conn.closed
    await conn.close()


@pytest.mark.gen_test
async def test_cancellation_mid_command_closes_connection(dsn: str) -> None:
    conn = await tornpool.connect(dsn)
    task = asyncio.ensure_future(conn.execute("SELECT SLEEP(3)"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.closed and not conn.busy
    await conn.close()


@pytest.mark.gen_test
async def test_use_after_close_is_typed(dsn: str) -> None:
    conn = await tornpool.connect(dsn)
    await conn.close()
    await conn.close()  # idempotent
    with pytest.raises(errors.ConnectionClosed):
        await conn.execute("SELECT 1")


def test_wrong_event_loop_is_typed(dsn: str) -> None:
    home = asyncio.new_event_loop()
    conn = home.run_until_complete(tornpool.connect(dsn))

    async def use() -> None:
        await conn.execute("SELECT 1")

    try:
        with pytest.raises(errors.WrongEventLoop):
            asyncio.run(use())
        # still fine on its own loop
        assert home.run_until_complete(_one(conn, "SELECT 1")) == (1,)
    finally:
        home.run_until_complete(conn.close())
        home.close()


# -- errors ------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_server_errors_keep_connection_usable(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        with pytest.raises(errors.ProgrammingError) as info:
            await conn.execute("SELEC 1")
        assert info.value.args[0] == 1064
        with pytest.raises(errors.ProgrammingError):
            await conn.execute("SELECT * FROM no_such_table_here")
        await conn.execute("CREATE TEMPORARY TABLE t_uq (id INT PRIMARY KEY)")
        await conn.execute("INSERT INTO t_uq VALUES (1)")
        with pytest.raises(errors.IntegrityError):
            await conn.execute("INSERT INTO t_uq VALUES (1)")
        assert not conn.closed
        assert await _one(conn, "SELECT 1") == (1,)


@pytest.mark.gen_test
async def test_connect_errors(dsn: str) -> None:
    params = tornpool.parse_dsn(dsn)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 3306)
    # refused port: find one nobody listens on
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free_port = s.getsockname()[1]
    s.close()
    with pytest.raises(errors.OperationalError) as info:
        await tornpool.connect(host="127.0.0.1", port=free_port, user="root")
    assert info.value.args[0] == 2003
    # unknown host name
    with pytest.raises(errors.OperationalError) as info:
        await tornpool.connect(host="no-such-host.invalid", port=3306, user="root", connect_timeout=5)
    assert info.value.args[0] == 2003
    # bad password
    with pytest.raises(errors.OperationalError) as info:
        await tornpool.connect(host=host, port=port, user="root", password="wrong-password")
    assert info.value.args[0] == 1045
    # unknown database
    with pytest.raises(errors.OperationalError) as info:
        await tornpool.connect(dsn, database="no_such_db_xyz")
    assert info.value.args[0] == 1049
    # bad arguments
    with pytest.raises(errors.DSNError):
        await tornpool.connect("postgres://x@y/z")
    with pytest.raises(errors.DSNError):
        await tornpool.connect(dsn, no_such_option=1)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.fault
async def test_connect_timeout_against_blackhole(dsn: str) -> None:
    params = tornpool.parse_dsn(dsn)
    from tornpool.testing import FaultProxy

    with FaultProxy(params.get("host", "127.0.0.1"), params.get("port", 3306)) as proxy:
        proxy.blackhole()
        start = time.monotonic()
        with pytest.raises(errors.ConnectTimeout) as info:
            await tornpool.connect(proxy.dsn_for(dsn), connect_timeout=0.5)
        assert time.monotonic() - start < 3
        assert isinstance(info.value, TimeoutError)


@pytest.mark.gen_test(timeout=30)
@pytest.mark.fault
async def test_server_gone_mid_query_and_idle(throwaway_mariadb) -> None:  # type: ignore[no-untyped-def]
    conn = await tornpool.connect(throwaway_mariadb.dsn)
    idle = await tornpool.connect(throwaway_mariadb.dsn)
    task = asyncio.ensure_future(conn.execute("SELECT SLEEP(10)"))
    await asyncio.sleep(0.2)
    throwaway_mariadb.kill()
    with pytest.raises(errors.ConnectionLost) as info:
        await task
    assert info.value.args[0] in (2006, 2013)
    assert conn.closed
    await asyncio.sleep(0.1)
    # the idle connection learns of the loss without sending anything
    assert idle.closed
    with pytest.raises(errors.ConnectionLost):
        await idle.execute("SELECT 1")
    await conn.close()
    await idle.close()


# -- large and streaming results ------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_result_larger_than_16_mib(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        (limit,) = await _one(conn, "SELECT @@max_allowed_packet")  # type: ignore[misc]
        if limit < 40 * 1024 * 1024:
            pytest.skip(f"server max_allowed_packet={limit} (tornpool.testing servers use 64M)")
        size = 17 * 1024 * 1024 + 123
        cur = await conn.execute("SELECT REPEAT('ab', %s), 7", (size // 2,))
        value, seven = cur.fetchone()
        assert len(value) == size - 1 and value[:4] == "abab" and seven == 7
        # and a large statement going out
        blob = b"x" * (17 * 1024 * 1024)
        cur = await conn.execute("SELECT LENGTH(%s)", (blob,))
        assert cur.fetchone() == (len(blob),)
        assert await _one(conn, "SELECT 1") == (1,)


@pytest.mark.gen_test(timeout=120)
async def test_streaming_100k_rows_in_constant_memory(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        sql = (
            "SELECT seq, CONCAT('row-', seq), seq * 1.5 FROM seq_1_to_100000"
        )
        tracemalloc.start()
        try:
            cur = await conn.execute(sql, cursor=tornpool.SSCursor)
            assert conn.has_unread_result
            count = 0
            total = 0
            async for row in cur:
                count += 1
                total += row[0]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == 100_000 and total == 100_000 * 100_001 // 2
        # 100k rows buffered would need tens of MiB; streaming stays in a few.
        assert peak < 8 * 1024 * 1024, peak
        assert not conn.has_unread_result
        assert await _one(conn, "SELECT 1") == (1,)


@pytest.mark.gen_test(timeout=60)
async def test_streaming_cursor_closed_early_drains(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        async with await conn.execute("SELECT seq FROM seq_1_to_50000", cursor=tornpool.SSDictCursor) as cur:
            assert await cur.fetchone() == {"seq": 1}
            assert len(await cur.fetchmany(10)) == 10
        assert not conn.has_unread_result
        assert await _one(conn, "SELECT 3") == (3,)


# -- other ways to drive it -------------------------------------------------------------


@pytest.mark.gen_test
def test_gen_coroutine_and_yield(dsn: str):  # type: ignore[no-untyped-def]
    conn = yield tornpool.connect(dsn)
    cur = yield conn.execute("SELECT 40 + 2")
    assert cur.fetchone() == (42,)
    yield conn.close()


def test_plain_asyncio_run(dsn: str) -> None:
    async def main() -> object:
        async with await tornpool.connect(dsn) as conn:
            return (await conn.execute("SELECT 'asyncio'")).fetchone()

    assert asyncio.run(main()) == ("asyncio",)


def test_tornado_run_sync(dsn: str) -> None:
    async def main() -> object:
        async with await tornpool.connect(dsn) as conn:
            return (await conn.execute("SELECT 'tornado'")).fetchone()

    loop = IOLoop(make_current=False)
    try:
        assert loop.run_sync(main) == ("tornado",)
    finally:
        loop.close()


@pytest.mark.gen_test
async def test_unix_socket(throwaway_mariadb) -> None:  # type: ignore[no-untyped-def]
    conn = await tornpool.connect(unix_socket=throwaway_mariadb.unix_socket, user="root", database="test")
    async with conn:
        assert await _one(conn, "SELECT @@socket = %s", (throwaway_mariadb.unix_socket,)) == (1,)
    # and the percent-encoded DSN form
    from urllib.parse import quote

    url = "mysql://root@" + quote(throwaway_mariadb.unix_socket, safe="") + "/test"
    async with await tornpool.connect(url) as conn:
        assert await _one(conn, "SELECT 1") == (1,)


@pytest.mark.gen_test(timeout=30)
async def test_tls_with_verification(tls_mariadb) -> None:  # type: ignore[no-untyped-def]
    conn = await tornpool.connect(
        tls_mariadb.dsn, ssl_ca=tls_mariadb.ssl_ca, ssl_verify_cert=True, ssl_verify_identity=True
    )
    async with conn:
        cur = await conn.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1]
        assert await _one(conn, "SELECT REPEAT('z', 100000)") == ("z" * 100000,)
    # a CA that did not sign the server's certificate is refused
    from tornpool.testing import MariaDBServer

    with MariaDBServer(tls=True) as other:
        with pytest.raises(errors.OperationalError) as refused:
            await tornpool.connect(tls_mariadb.dsn, ssl_ca=other.ssl_ca, ssl_verify_cert=True)
        assert refused.value.args[0] == 2003
        assert "CERTIFICATE_VERIFY_FAILED" in refused.value.args[1]


def test_no_greenlet_leak_per_query(dsn: str) -> None:
    import greenlet

    async def main() -> int:
        async with await tornpool.connect(dsn) as conn:
            for _ in range(50):
                await conn.execute("SELECT 1")
            gc.collect()
            before = sum(isinstance(o, greenlet.greenlet) for o in gc.get_objects())
            for _ in range(200):
                await conn.execute("SELECT 1")
            gc.collect()
            return sum(isinstance(o, greenlet.greenlet) for o in gc.get_objects()) - before

    assert asyncio.run(main()) == 0


def _live_greenlets() -> int:
    import greenlet

    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


@pytest.mark.gen_test(timeout=60)
async def test_terminated_and_dropped_connections_are_collected(dsn: str) -> None:
    import weakref

    before = _live_greenlets()
    refs = []
    for i in range(6):
        conn = await tornpool.connect(dsn)
        await conn.execute("SELECT 1")
        if i % 3 == 0:
            with pytest.raises(errors.CommandTimeout):
                await conn.execute("SELECT SLEEP(2)", timeout=0.05)
        elif i % 3 == 1:
            task = asyncio.ensure_future(conn.execute("SELECT SLEEP(2)"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            del task
        # i % 3 == 2: dropped while idle and open, never closed
        refs.append(weakref.ref(conn))
        del conn
    # The event loop's handle that resumed this coroutine still holds the
    # last command's Future (and through its cursor, that connection) until
    # the coroutine yields once.
    await asyncio.sleep(0)
    gc.collect()
    assert [r() for r in refs] == [None] * 6
    assert _live_greenlets() <= before


@pytest.mark.gen_test(timeout=60)
async def test_streaming_cursor_dropped_after_terminate_is_quiet(dsn: str) -> None:
    conn = await tornpool.connect(dsn)
    cur = await conn.execute("SELECT seq FROM seq_1_to_100000", cursor=tornpool.SSCursor)
    assert await cur.fetchone() == (1,)
    conn.terminate()
    # PyMySQL's SSCursor would try to drain the result from its finalizer
    # here (network I/O from the garbage collector, failing on a closed
    # socket); ours must not: nothing may reach the unraisable hook.
    import sys

    seen: list = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        del cur
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert seen == []


@pytest.mark.gen_test
async def test_preferred_tls_context_is_shared_explicit_ones_are_not(dsn: str, tls_mariadb) -> None:  # type: ignore[no-untyped-def]
    a, b = await tornpool.connect(dsn), await tornpool.connect(dsn)
    c = await tornpool.connect(tls_mariadb.dsn, ssl_ca=tls_mariadb.ssl_ca, ssl_verify_cert=True)
    d = await tornpool.connect(tls_mariadb.dsn, ssl_ca=tls_mariadb.ssl_ca, ssl_verify_cert=True)
    try:
        if getattr(a.raw, "ctx", None) is None:
            pytest.skip(f"PyMySQL {pymysql.__version__} has no preferred-TLS mode (1.2+ does)")
        assert a.raw.ctx.context is b.raw.ctx.context  # built once: no CA files of its own
        assert c.raw.ctx.context is not d.raw.ctx.context  # certificate files are re-read
    finally:
        for conn in (a, b, c, d):
            await conn.close()
