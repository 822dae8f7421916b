"""The DB-API shaped ``cursor()`` on a connection and on a pool lease, and the
rest of the connection surface nothing else exercises (real server)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pymysql
import pytest

import tornpool
from tornpool import Pool
from tornpool.errors import ConnectionReleased, MySQLError, NotSupportedError, OperationalError, ProgrammingError


def _blocking_args(dsn: str) -> dict[str, Any]:
    args = tornpool.parse_dsn(dsn)
    args.setdefault("host", "127.0.0.1")
    return args


@pytest.mark.gen_test
async def test_cursor_on_a_connection_buffered_and_dict(mariadb_dsn: str) -> None:
    async with await tornpool.connect(mariadb_dsn, autocommit=True) as conn:
        async with conn.cursor() as cur:
            assert cur.rowcount == -1 and cur.description is None
            assert await cur.execute("CREATE TEMPORARY TABLE cur_t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(5))") == 0
            assert await cur.execute("INSERT INTO cur_t (v) VALUES (%s)", ("a",)) == 1
            assert cur.lastrowid == 1
            assert await cur.executemany("INSERT INTO cur_t (v) VALUES (%s)", [("b",), ("c",), ("d",)]) == 3
            assert await cur.execute("SELECT id, v FROM cur_t ORDER BY id") == 4
            assert [d[0] for d in cur.description] == ["id", "v"]
            assert await cur.fetchone() == (1, "a")
            assert await cur.fetchmany(2) == ((2, "b"), (3, "c"))
            assert cur.rownumber == 3
            assert await cur.fetchall() == ((4, "d"),)
            assert await cur.fetchone() is None
            await cur.scroll(0, "absolute")
            assert [row async for row in cur] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
            cur.arraysize = 3
            await cur.execute("SELECT id FROM cur_t ORDER BY id")
            assert len(await cur.fetchmany()) == 3
        assert cur.closed
        with pytest.raises(ProgrammingError):
            await cur.execute("SELECT 1")
        dcur = conn.cursor(pymysql.cursors.DictCursor)  # PyMySQL's class works too
        await dcur.execute("SELECT 1 AS a, 2 AS b")
        assert await dcur.fetchall() == [{"a": 1, "b": 2}]
        assert dcur.mogrify("SELECT %s", ("x'y",)) == "SELECT 'x\\'y'"
        await dcur.close()


@pytest.mark.gen_test
async def test_cursor_streaming_and_callproc_nextset(mariadb_dsn: str) -> None:
    async with await tornpool.connect(mariadb_dsn, autocommit=True) as conn:
        async with conn.cursor(tornpool.SSDictCursor) as cur:
            await cur.execute("SELECT seq FROM seq_1_to_5000")
            assert await cur.fetchone() == {"seq": 1}
            n = 1
            async for row in cur:
                n += 1
            assert n == 5000
        # closing early drains the stream: the connection is usable again
        cur = conn.cursor(tornpool.SSCursor)
        await cur.execute("SELECT seq FROM seq_1_to_50000")
        assert await cur.fetchmany(3) == [(1,), (2,), (3,)]
        await cur.close()
        assert not conn.has_unread_result
        await conn.execute("DROP PROCEDURE IF EXISTS cur_two")
        await conn.execute("CREATE PROCEDURE cur_two(IN x INT) BEGIN SELECT x; SELECT x * 2; END")
        try:
            cur = conn.cursor()
            assert await cur.callproc("cur_two", (21,)) == (21,)
            assert await cur.fetchall() == ((21,),)
            assert await cur.nextset() is True
            assert await cur.fetchall() == ((42,),)
            assert await cur.nextset() is True  # the CALL's own status result
            assert await cur.nextset() is None
        finally:
            await conn.execute("DROP PROCEDURE cur_two")


@pytest.mark.gen_test
async def test_cursor_on_a_lease_dies_with_it(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1) as pool:
        async with pool.acquire() as lease:
            cur = lease.cursor(tornpool.DictCursor)
            await cur.execute("SELECT 3 AS three")
        assert await cur.fetchone() == {"three": 3}  # buffered: still readable
        with pytest.raises(ConnectionReleased):
            await cur.execute("SELECT 4")
        with pytest.raises(ConnectionReleased):
            lease.cursor()


@pytest.mark.gen_test
async def test_lease_surface(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=2) as pool:
        await pool.execute("CREATE TABLE IF NOT EXISTS cur_lease (v INT) ENGINE=InnoDB")
        await pool.execute("DELETE FROM cur_lease")
        lease = await pool.acquire()  # awaiting acquire() gives the lease itself
        try:
            async with lease.transaction():
                cur = await lease.executemany("INSERT INTO cur_lease VALUES (%s)", [(1,), (2,)])
                assert cur.rowcount == 2
            with pytest.raises(ZeroDivisionError):
                async with lease.transaction():
                    await lease.execute("INSERT INTO cur_lease VALUES (3)")
                    1 / 0
            assert lease.escape("it's") == "'it\\'s'"
            assert lease.mogrify("SELECT %s", (1,)) == "SELECT 1"
            await lease.autocommit(False)
            assert (await lease.execute("SELECT @@autocommit")).fetchone() == (0,)
        finally:
            pool.putconn(lease)
        cur = await pool.execute("SELECT v FROM cur_lease ORDER BY v")
        assert cur.fetchall() == ((1,), (2,))
        cur = await pool.executemany("INSERT INTO cur_lease VALUES (%s)", [(5,), (6,)])
        assert cur.rowcount == 2
        await pool.execute("DROP PROCEDURE IF EXISTS cur_p")
        await pool.execute("CREATE PROCEDURE cur_p(x INT) SELECT x * 10")
        assert (await pool.callproc("cur_p", (4,))).fetchone() == (40,)
        # close() on a lease closes its connection and gives the lease back
        lease = await pool.getconn()
        tid = lease.thread_id
        await lease.close()
        assert lease.released
        assert (await pool.execute("SELECT CONNECTION_ID()")).fetchone()[0] != tid
        await pool.execute("DROP PROCEDURE cur_p")
        await pool.execute("DROP TABLE cur_lease")


@pytest.mark.gen_test
async def test_streaming_cursor_fetchall_nextset_and_refusals(mariadb_dsn: str) -> None:
    async with await tornpool.connect(mariadb_dsn, autocommit=True,
                                      client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS) as conn:
        cur = await conn.execute("SELECT 1; SELECT 2", cursor=tornpool.SSCursor)
        assert await cur.fetchall() == [(1,)]
        assert await cur.nextset() is True
        assert await cur.fetchall() == [(2,)]
        assert await cur.nextset() is False
        with pytest.raises(NotSupportedError):
            await conn.executemany("SELECT %s", [(1,)], cursor=tornpool.SSCursor)
        with pytest.raises(ValueError):
            async with Pool(mariadb_dsn, size=1) as pool:
                await pool.execute("SELECT 1", cursor=tornpool.SSCursor)


@pytest.mark.gen_test
async def test_autocommit_escape_and_a_missing_unix_socket(mariadb_dsn: str) -> None:
    async with await tornpool.connect(mariadb_dsn, autocommit=True) as conn:
        await conn.autocommit(False)
        assert (await conn.execute("SELECT @@autocommit")).fetchone() == (0,)
        await conn.autocommit(False)  # unchanged: nothing is sent
        await conn.autocommit(True)
        assert (await conn.execute("SELECT @@autocommit")).fetchone() == (1,)
        assert conn.escape(None) == "NULL"
        # the literal PyMySQL would build, and the value the server gives back for it
        literal = conn.escape(b"a'b")
        blocking = pymysql.connect(**_blocking_args(mariadb_dsn))
        try:
            with blocking.cursor() as pcur:
                assert literal == blocking.escape(b"a'b")
                pcur.execute("SELECT " + literal)
                expected = pcur.fetchone()
        finally:
            blocking.close()
        assert (await conn.execute("SELECT " + literal)).fetchone() == expected
        assert expected in ((b"a'b",), ("a'b",))
    missing = os.path.join(tempfile.gettempdir(), "tornpool-no-such-socket.sock")
    with pytest.raises(OperationalError) as refused:
        await tornpool.connect(unix_socket=missing, user="root")
    assert refused.value.args[0] == 2002 and missing in refused.value.args[1]


@pytest.mark.gen_test
async def test_local_infile_goes_through_pymysql(mariadb_dsn: str, tmp_path: Any) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("1,one\n2,two\n3,three\n")
    async with await tornpool.connect(mariadb_dsn, autocommit=True, local_infile=True) as conn:
        await conn.execute("CREATE TEMPORARY TABLE cur_load (id INT, name VARCHAR(10))")
        try:
            cur = await conn.execute(
                "LOAD DATA LOCAL INFILE %s INTO TABLE cur_load FIELDS TERMINATED BY ','", (str(data),))
        except MySQLError as exc:
            if exc.args[0] in (1148, 3948, 4166):  # server has local_infile off
                pytest.skip(f"server refuses LOAD DATA LOCAL: {exc}")
            raise
        assert cur.rowcount == 3
        assert (await conn.execute("SELECT COUNT(*), MAX(name) FROM cur_load")).fetchone() == (3, "two")
        assert (await conn.execute("SELECT 1")).fetchone() == (1,)  # the fast path carries on
