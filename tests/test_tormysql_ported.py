"""TorMySQL's own tests (snower/TorMySQL ``tests/``), ported to run against
the facade with ``import tornpool.tormysql as tormysql``.

One test per TorMySQL test method, named after its file: basic, init,
charset, concurrent, connections, create_db, ping, transaction, warnings,
with_with, helpers, asyncio, asyncio_alone.  The unstable-connection ones are
in ``test_tormysql_unstable.py``.  TorMySQL's ``BaseTestCase`` made a pool
of ``MYSQL_POOL`` (5) connections with ``idle_seconds=7200`` and closed it in
``tearDown``; :func:`pool` does the same, and checks that the server is left
without a connection of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tornado import gen

import tornpool.tormysql as tormysql
from test_tormysql_util import ROWS, TorMySQLServer, tormysql_server, wait_count
from tornpool.tormysql.cursor import SSDictCursor


@pytest.fixture(scope="module")
def tserver() -> Iterator[TorMySQLServer]:
    with tormysql_server() as server:
        yield server


@contextlib.asynccontextmanager
async def pool(server: TorMySQLServer, helpers: bool = False, max_connections: int = 5,
               **params: Any) -> AsyncIterator[Any]:
    """BaseTestCase's setUp/tearDown, plus: nothing stays open on the server."""
    cls = tormysql.helpers.ConnectionPool if helpers else tormysql.ConnectionPool
    p = cls(max_connections=max_connections, idle_seconds=7200, **server.params(**params))
    try:
        yield p
    finally:
        if not p.closed:
            await p.close()
    assert await wait_count(server, 0) == 0


# -- test_basic, test_init, test_connections -------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_basic(tserver: TorMySQLServer) -> None:
    async with pool(tserver) as p:
        connection = await p.Connection()
        cursor = connection.cursor()
        await cursor.execute("select * from test limit 1")
        datas = cursor.fetchall()
        await cursor.close()
        connection.close()
        assert datas == ((0, "row 0"),)
        await p.close(5)


@pytest.mark.gen_test(timeout=20)
async def test_init(tserver: TorMySQLServer) -> None:
    connection = await tormysql.Connection(**tserver.params())
    cursor = connection.cursor()
    await cursor.execute("SELECT 1")
    datas = cursor.fetchall()
    await cursor.close()
    await connection.close()
    assert datas == ((1,),)


@pytest.mark.gen_test(timeout=20)
async def test_connections_del(tserver: TorMySQLServer) -> None:
    """test_connections.test_del: calling __del__ by hand is harmless, and
    closes the connection."""
    connection = await tormysql.Connection(**tserver.params())
    assert await wait_count(tserver, 1) == 1
    connection.__del__()
    assert not connection.open
    assert await wait_count(tserver, 0) == 0


# -- test_charset ------------------------------------------------------------------------------

CHARSETS = [
    "big5", "cp850", "latin1", "latin2", "ascii", "ujis", "sjis", "hebrew", "tis620", "euckr",
    "gb2312", "greek", "cp1250", "gbk", "latin5", "utf8", "cp866", "macroman", "cp852", "latin7",
    "utf8mb4", "cp1251", "cp1256", "cp1257", "cp932",
]
#: MariaDB >= 10.6 reports utf8 as utf8mb3.
ALIASES = {"utf8": ("utf8", "utf8mb3")}


@pytest.mark.gen_test(timeout=30)
async def test_charset(tserver: TorMySQLServer) -> None:
    async with pool(tserver) as p:
        for charset in CHARSETS:
            with (await p.Connection()) as connection:
                await connection.set_charset(charset)
                with connection.cursor() as cursor:
                    await cursor.execute("SHOW VARIABLES LIKE 'character_set_client'")
                    data = cursor.fetchone()
                    assert data[1] in ALIASES.get(charset, (charset,))
        with (await p.Connection()) as connection:
            assert connection.escape(r'"') == "'\\\"'"


@pytest.mark.gen_test(timeout=30)
async def test_charset_is_restored_for_the_next_user(tserver: TorMySQLServer) -> None:
    """A connection given back after set_charset() is handed out again in
    the pool's character set (TorMySQL handed it out as the last user left it)."""
    async with pool(tserver, max_connections=1) as p:
        with (await p.Connection()) as connection:
            await connection.set_charset("latin1")
        with (await p.Connection()) as connection:
            with connection.cursor() as cursor:
                await cursor.execute("SELECT @@character_set_client")
                assert cursor.fetchone()[0] in ("utf8", "utf8mb3")


# -- test_concurrent ------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_concurrent(tserver: TorMySQLServer) -> None:
    """Two ``select sleep()`` on two pooled connections overlap."""
    async with pool(tserver) as p:
        @gen.coroutine
        def execute() -> Any:
            with (yield p.Connection()) as connection:
                with connection.cursor() as cursor:
                    yield cursor.execute("select sleep(0.5)")
                    return cursor.fetchall()

        start = time.monotonic()
        results = await asyncio.gather(execute(), execute())
        assert results == [((0,),), ((0,),)]
        assert time.monotonic() - start < 0.9


# -- test_create_db, test_ping, test_transaction, test_warnings ---------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_create_db(tserver: TorMySQLServer) -> None:
    name = "test_{0}".format(uuid.uuid4().hex)
    async with pool(tserver) as p:
        with (await p.Connection()) as connection:
            await connection.begin()
            try:
                with connection.cursor() as cursor:
                    await cursor.execute("CREATE DATABASE {0}".format(name))
                await connection.select_db(name)
                with connection.cursor() as cursor:
                    await cursor.execute("SHOW TABLES")
                    assert cursor.fetchall() == tuple()
                with connection.cursor() as cursor:
                    await cursor.execute("DROP DATABASE {0}".format(name))
            finally:
                await connection.rollback()


@pytest.mark.gen_test(timeout=20)
async def test_ping(tserver: TorMySQLServer) -> None:
    async with pool(tserver) as p:
        with (await p.Connection()) as connection:
            assert await connection.ping() is None


@pytest.mark.gen_test(timeout=20)
async def test_transaction(tserver: TorMySQLServer) -> None:
    name = str(uuid.uuid4().hex)
    async with pool(tserver) as p:
        connection = await p.Connection()
        cursor = connection.cursor()
        await cursor.execute("CREATE TABLE test_{name} (id INT, data VARCHAR(100))".format(name=name))
        await cursor.close()
        try:
            await connection.begin()
            cursor = connection.cursor()
            await cursor.execute("INSERT INTO test_{name} (data) VALUES ('test')".format(name=name))
            await cursor.close()
            await connection.rollback()
            cursor = connection.cursor()
            await cursor.execute("SELECT COUNT(*) FROM test_{name}".format(name=name))
            data = cursor.fetchone()
            await cursor.close()
        finally:
            cursor = connection.cursor()
            await cursor.execute("DROP TABLE test_{name}".format(name=name))
            await cursor.close()
            connection.close()
        assert data == (0,), "Transaction not working"


@pytest.mark.gen_test(timeout=20)
async def test_warnings(tserver: TorMySQLServer) -> None:
    async with pool(tserver) as p:
        connection = await p.Connection()
        warnings = await connection.show_warnings()
        connection.close()
        assert warnings == (), "No warnings"

        name = uuid.uuid4().hex
        with (await p.Connection()) as connection:
            with connection.cursor() as cursor:
                await cursor.execute("DROP TABLE IF EXISTS test_{name}".format(name=name))
            warnings = await connection.show_warnings()
            assert name in warnings[0][2]


# -- test_with_with --------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_with_with(tserver: TorMySQLServer) -> None:
    async with pool(tserver) as p:
        with (await p.Connection()) as connection:
            with connection.cursor() as cursor:
                await cursor.execute("select * from test limit 1")
                assert bool(cursor.fetchall())
        await p.close()

    async with pool(tserver, cursorclass=SSDictCursor) as p:
        with (await p.Connection()) as connection:
            cursor = connection.cursor()
            await cursor.execute("select 1 as test")
            result = await cursor.fetchone()
            await cursor.close()
            assert "test" in result
            assert result["test"] == 1


# -- test_helpers --------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_helpers(tserver: TorMySQLServer) -> None:
    async with pool(tserver, helpers=True) as p:
        cursor = await p.execute("select 1 as test")
        assert cursor.fetchone() == (1,)

        tx = await p.begin()
        cursor = await tx.execute("select 1 as test")
        await tx.commit()
        assert cursor.fetchone() == (1,)


# -- test_asyncio, test_asyncio_alone ------------------------------------------------------------


async def run_execute(p: Any) -> int:
    """TorMySQL's ``run_execute``: every async form, on the helpers pool."""
    cursor = await p.execute("select * from test limit 1")
    assert cursor.fetchall()

    async with await p.begin() as transaction:
        cursor = await transaction.execute("select * from test limit 1")
        assert cursor.fetchall()

    async with await p.Connection() as conn:
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT * FROM test limit 10")
            assert len(cursor.fetchall()) == 10

    streamed = 0
    async with await p.Connection() as conn:
        async with conn.cursor(tormysql.SSCursor) as cursor:
            await cursor.execute("SELECT * FROM test limit 10000")
            async for data in cursor:
                assert data
                streamed += 1
    return streamed


@pytest.mark.gen_test(timeout=30)
async def test_asyncio(tserver: TorMySQLServer) -> None:
    """On Tornado's IOLoop."""
    async with pool(tserver, helpers=True) as p:
        assert await run_execute(p) == ROWS


def test_asyncio_alone(tserver: TorMySQLServer) -> None:
    """On a plain asyncio loop, no Tornado involved."""
    async def main() -> int:
        async with pool(tserver, helpers=True) as p:
            return await run_execute(p)

    assert asyncio.run(asyncio.wait_for(main(), 30)) == ROWS
