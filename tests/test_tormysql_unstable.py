"""TorMySQL's ``test_unstable_connection.py``, ported: its four scenarios ran
through a hand-made proxy (sevent) whose sessions it ended or whose server
socket it closed; here :class:`tornpool.testing.FaultProxy` does that, and a
killed server (SIGKILL, then restart) adds the server-side outage.  Every
scenario must end with a typed error in bounded time, never hang.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from pymysql import OperationalError

import tornpool.tormysql as tormysql
from test_tormysql_util import TorMySQLServer, blocking, tormysql_server, wait_count
from tornpool.errors import CommandTimeout, PoolUnavailable
from tornpool.testing import FaultProxy
from tornpool.tormysql.pool import ConnectionNotFoundError

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def tserver() -> Iterator[TorMySQLServer]:
    with tormysql_server() as server:
        yield server


@pytest.fixture
def proxy(tserver: TorMySQLServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", tserver.server.port) as p:
        yield p


def via(tserver: TorMySQLServer, proxy: FaultProxy, **extra: object) -> dict[str, object]:
    return tserver.params(port=proxy.port, **extra)


@pytest.mark.parametrize("how", ["half_close", "reset_all"])
@pytest.mark.gen_test(timeout=20)
async def test_connection_closing(tserver: TorMySQLServer, proxy: FaultProxy, how: str) -> None:
    """The proxy ends the session under an open client: the next statement
    fails with OperationalError, at once."""
    connection = await tormysql.Connection(**via(tserver, proxy))
    cursor = connection.cursor()
    getattr(proxy, how)()
    await asyncio.sleep(0.05)
    start = time.monotonic()
    with pytest.raises(OperationalError):
        await cursor.execute("SELECT 1")
        await cursor.close()
    assert time.monotonic() - start < 1
    assert not connection.open
    proxy.refuse()


@pytest.mark.gen_test(timeout=20)
async def test_connection_closed(tserver: TorMySQLServer, proxy: FaultProxy) -> None:
    """Closed client, then the proxy stops listening: a new connect fails
    with OperationalError (2003)."""
    conn = await tormysql.Connection(**via(tserver, proxy))
    await conn.close()
    proxy.refuse()
    with pytest.raises(OperationalError) as info:
        await tormysql.Connection(**via(tserver, proxy))
    assert info.value.args[0] == 2003


@pytest.mark.gen_test(timeout=20)
async def test_remote_closing(tserver: TorMySQLServer, proxy: FaultProxy) -> None:
    """A pool connection really closed (``do_close``), the proxy gone: the
    next ``pool.Connection()`` fails with OperationalError instead of
    waiting out ``wait_connection_timeout``."""
    pool = tormysql.ConnectionPool(max_connections=5, idle_seconds=7200, **via(tserver, proxy))
    try:
        conn = await pool.Connection()
        await conn.do_close()
        proxy.refuse()
        start = time.monotonic()
        with pytest.raises(OperationalError) as info:
            await pool.Connection()
        assert isinstance(info.value, PoolUnavailable)
        assert time.monotonic() - start < 2
    finally:
        await pool.close()


@pytest.mark.gen_test(timeout=20)
async def test_pool_closing(tserver: TorMySQLServer, proxy: FaultProxy) -> None:
    """The proxy ends every session while a pool connection is held: its
    statement fails (OperationalError), the connection goes back dead, and
    the pool still closes cleanly."""
    pool = tormysql.ConnectionPool(max_connections=5, idle_seconds=7200, **via(tserver, proxy))
    try:
        with pytest.raises((OperationalError, ConnectionNotFoundError)):
            with (await pool.Connection()) as connect:
                with connect.cursor() as cursor:
                    proxy.reset_all()
                    await asyncio.sleep(0.05)
                    await cursor.execute("SELECT 1 as test")
        assert pool.native.stats()["pool_available"] == 0  # the dead one was not kept
    finally:
        await pool.close()
    proxy.refuse()
    assert await wait_count(tserver, 0) == 0


@pytest.mark.gen_test(timeout=20)
async def test_blackholed_server_and_read_timeout(tserver: TorMySQLServer, proxy: FaultProxy) -> None:
    """TorMySQL #39 asked for per-query timeouts: ``read_timeout`` bounds
    every statement (the connection is closed, the pool replaces it)."""
    pool = tormysql.helpers.ConnectionPool(max_connections=2, **via(tserver, proxy, read_timeout=0.5))
    try:
        assert (await pool.execute("SELECT 1")).fetchone() == (1,)
        proxy.blackhole()
        start = time.monotonic()
        with pytest.raises(CommandTimeout):
            await pool.execute("SELECT 2")
        assert 0.4 < time.monotonic() - start < 2
        proxy.pass_through()
        assert (await pool.execute("SELECT 3")).fetchone() == (3,)
    finally:
        await pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_killed_server(throwaway_mariadb: object) -> None:
    """kill -9 under a busy pool: running statements fail with
    OperationalError, new requests fail at once (nothing alive, nothing
    reachable); after the restart the pool serves again."""
    srv = throwaway_mariadb
    params = dict(host="127.0.0.1", port=srv.port, user="root", passwd="", db="test")  # type: ignore[attr-defined]
    pool = tormysql.helpers.ConnectionPool(max_connections=4, wait_connection_timeout=3, **params)
    try:
        assert (await pool.execute("SELECT 1")).fetchone() == (1,)
        running = [pool.execute("SELECT SLEEP(5)") for _ in range(4)]
        waiting = [pool.execute("SELECT 1") for _ in range(4)]
        await asyncio.sleep(0.2)
        await blocking(srv.kill)  # type: ignore[attr-defined]
        start = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*running, *waiting, return_exceptions=True), 10)
        assert all(isinstance(r, OperationalError) for r in results), results
        assert time.monotonic() - start < 3
        with pytest.raises(OperationalError):
            await pool.execute("SELECT 1")
        await blocking(srv.restart)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while True:
            try:
                assert (await pool.execute("SELECT 2")).fetchone() == (2,)
                break
            except PoolUnavailable:
                assert time.monotonic() < deadline, "no recovery after the restart"
                await asyncio.sleep(0.05)
    finally:
        await pool.close()
