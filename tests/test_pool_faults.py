"""Pool under faults: server killed and restarted, proxy faults, the cap
counted on the server.  Every test here owns its server (``throwaway_mariadb``)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any, Dict, List

import pymysql
import pytest

from tornpool.errors import PoolUnavailable
from tornpool.errors import MySQLError, OperationalError, PoolTimeout
from tornpool.pool import Pool
from tornpool.testing import FaultProxy, MariaDBServer

pytestmark = pytest.mark.fault


def _admin(srv: MariaDBServer) -> Any:
    return pymysql.connect(host="127.0.0.1", port=srv.port, user="root", autocommit=True)


def _make_user(srv: MariaDBServer, user: str) -> str:
    c = _admin(srv)
    cur = c.cursor()
    cur.execute("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY 'pw'" % user)
    cur.execute("GRANT ALL ON *.* TO '%s'@'%%'" % user)
    c.close()
    return "mysql://%s:pw@127.0.0.1:%d/test" % (user, srv.port)


class ServerCounter:
    """Samples information_schema.processlist for one user from a thread."""

    def __init__(self, srv: MariaDBServer, user: str) -> None:
        self.srv, self.user = srv, user
        self.max = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        c = _admin(self.srv)
        try:
            cur = c.cursor()
            cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user=%s",
                        (self.user,))
            return int(cur.fetchone()[0])
        finally:
            c.close()

    def _run(self) -> None:
        c = _admin(self.srv)
        cur = c.cursor()
        while not self._stop.is_set():
            cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user=%s",
                        (self.user,))
            self.max = max(self.max, int(cur.fetchone()[0]))
            self.samples += 1
            time.sleep(0.002)
        c.close()

    def __enter__(self) -> "ServerCounter":
        self._thread.start()
        return self

    def __exit__(self, *a: Any) -> None:
        self._stop.set()
        self._thread.join()


async def _wait_server_count(counter: ServerCounter, want: int, timeout: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while True:
        n = await loop.run_in_executor(None, counter.count)
        if n == want or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=60)
async def test_cap_holds_on_server_under_storm(throwaway_mariadb: MariaDBServer) -> None:
    dsn = _make_user(throwaway_mariadb, "capuser")
    rnd = random.Random(3)
    pool = Pool(dsn, size=2, max_size=5, timeout=2)
    await pool.connect()
    with ServerCounter(throwaway_mariadb, "capuser") as counter:
        async def worker() -> None:
            async with pool.acquire(timeout=rnd.choice([0.001, 0.05, 2])) as c:
                await c.execute("SELECT SLEEP(%s)", (rnd.choice([0, 0.02, 0.3]),),
                                timeout=rnd.choice([None, 0.01, 1]))

        for _ in range(5):
            tasks = [asyncio.ensure_future(worker()) for _ in range(50)]
            await asyncio.sleep(rnd.random() * 0.05)
            for t in rnd.sample(tasks, 15):
                t.cancel()  # some while waiting, some mid-query
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.1)
        res = await asyncio.gather(*[pool.execute("SELECT 1") for _ in range(10)])
        assert all(r.fetchone() == (1,) for r in res)
    assert counter.samples > 20
    assert counter.max <= 5, "server saw %d connections" % counter.max
    await pool.close()
    assert await _wait_server_count(counter, 0, 2.0) == 0


@pytest.mark.gen_test(timeout=60)
async def test_volatile_db_kill9_restart(throwaway_mariadb: MariaDBServer) -> None:
    srv = throwaway_mariadb
    failed_hook: List[Any] = []
    pool = Pool(srv.dsn, size=3, max_size=6, timeout=1.0, reconnect_timeout=0.3,
                reconnect_failed=failed_hook.append, connect_timeout=2)
    await pool.connect()
    errors: Dict[str, int] = {}
    ok = [0]
    stop = [False]

    async def load() -> None:
        while not stop[0]:
            try:
                await pool.execute("SELECT SLEEP(0.01)")
                ok[0] += 1
            except MySQLError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                await asyncio.sleep(0.01)

    tasks = [asyncio.ensure_future(load()) for _ in range(10)]
    await asyncio.sleep(0.3)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, srv.kill)
    # waiters fail by their deadline, typed, never hang
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout) as ei:
        await pool.execute("SELECT 1")
    assert time.monotonic() - t0 < 1.6
    assert isinstance(ei.value.__cause__, OperationalError)
    await asyncio.sleep(0.5)
    assert failed_hook == [pool]
    await loop.run_in_executor(None, srv.restart)
    t_up = time.monotonic()
    while True:
        try:
            await pool.execute("SELECT 1", timeout=0.2)
            break
        except MySQLError:
            await asyncio.sleep(0.02)
    recovery = time.monotonic() - t_up
    stop[0] = True
    await asyncio.gather(*tasks)
    assert recovery < 1.5, recovery
    assert ok[0] > 0 and sum(errors.values()) > 0
    assert set(errors) <= {"PoolTimeout", "ConnectionLost", "OperationalError", "CommandTimeout"}
    s = pool.stats()
    assert s["connections_errors"] > 0 and s["pool_size"] <= 6
    await pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_fail_fast_when_server_down(throwaway_mariadb: MariaDBServer) -> None:
    srv = throwaway_mariadb
    pool = Pool(srv.dsn, size=2, timeout=10, fail_fast=True, check_idle=0.0)
    await pool.connect()
    await asyncio.get_running_loop().run_in_executor(None, srv.kill)
    t0 = time.monotonic()
    with pytest.raises((PoolUnavailable, OperationalError)):
        for _ in range(5):
            await pool.execute("SELECT 1")
    with pytest.raises(PoolUnavailable):
        await pool.execute("SELECT 1")
    assert time.monotonic() - t0 < 2.0  # far before the 10 s deadline
    await asyncio.get_running_loop().run_in_executor(None, srv.restart)
    deadline = time.monotonic() + 3
    while True:
        try:
            assert (await pool.execute("SELECT 1")).fetchone() == (1,)
            break
        except PoolUnavailable:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    await pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_partially_connected_and_start_while_down(throwaway_mariadb: MariaDBServer) -> None:
    srv = throwaway_mariadb
    proxy = FaultProxy.for_server(srv).start()
    try:
        proxy.refuse()
        pool = Pool(proxy.dsn_for(srv.dsn), size=2, timeout=0.5)
        with pytest.raises(OperationalError):
            await pool.connect()  # Momoko: bad start -> error, pool closed
        assert pool.closed
        lazy = Pool(proxy.dsn_for(srv.dsn), size=0, max_size=2, timeout=3)
        fut = asyncio.ensure_future(lazy.execute("SELECT 1"))
        await asyncio.sleep(0.4)
        proxy.accept_again()
        assert (await fut).fetchone() == (1,)  # recovered inside the deadline
        await lazy.close()
    finally:
        proxy.stop()


@pytest.mark.gen_test(timeout=60)
async def test_proxy_blackhole_timeout_is_one_deadline(throwaway_mariadb: MariaDBServer) -> None:
    srv = throwaway_mariadb
    proxy = FaultProxy.for_server(srv).start()
    try:
        pool = Pool(proxy.dsn_for(srv.dsn), size=1, max_size=2, connect_timeout=5)
        await pool.connect()
        held = await pool.getconn()
        proxy.blackhole()
        t0 = time.monotonic()
        with pytest.raises(PoolTimeout):
            await pool.getconn(timeout=0.3)  # would need a new connect: stuck in the proxy
        assert time.monotonic() - t0 < 0.6
        # the held connection keeps working once traffic flows; nothing was locked
        proxy.pass_through()
        assert (await held.execute("SELECT 1")).fetchone() == (1,)
        pool.putconn(held)
        await pool.close(timeout=1)
    finally:
        proxy.stop()


@pytest.mark.gen_test(timeout=60)
async def test_proxy_reset_mid_result_and_half_close(throwaway_mariadb: MariaDBServer) -> None:
    srv = throwaway_mariadb
    proxy = FaultProxy.for_server(srv).start()
    try:
        pool = Pool(proxy.dsn_for(srv.dsn), size=2, check_idle=0.0)
        await pool.connect()
        proxy.reset_after(2000)
        with pytest.raises(OperationalError):
            await pool.execute("SELECT REPEAT('x', 100000)")
        proxy.pass_through()
        assert (await pool.execute("SELECT 2")).fetchone() == (2,)
        proxy.half_close()
        await asyncio.sleep(0.05)
        # idle connections were half-closed: validation replaces them invisibly
        res = await asyncio.gather(*[pool.execute("SELECT 3") for _ in range(2)])
        assert [r.fetchone() for r in res] == [(3,), (3,)]
        assert pool.stats()["connections_lost"] >= 1
        await pool.close()
    finally:
        proxy.stop()


@pytest.mark.gen_test(timeout=60)
async def test_statement_reaching_server_is_not_retried(throwaway_mariadb: MariaDBServer) -> None:
    srv = throwaway_mariadb
    proxy = FaultProxy.for_server(srv).start()
    try:
        pool = Pool(proxy.dsn_for(srv.dsn), size=1, max_size=2)
        await pool.connect()
        await pool.execute("CREATE TABLE IF NOT EXISTS t_once (id INT AUTO_INCREMENT PRIMARY KEY)")
        proxy.reset_after(0)  # the next server reply kills the link: the INSERT did run
        with pytest.raises(OperationalError):
            await pool.execute("INSERT INTO t_once VALUES ()")
        proxy.pass_through()
        assert (await pool.execute("SELECT COUNT(*) FROM t_once")).fetchone() == (1,)
        await pool.close()
    finally:
        proxy.stop()


@pytest.mark.gen_test(timeout=30)
async def test_fail_fast_lazy_pool_finds_the_server_again(throwaway_mariadb: MariaDBServer) -> None:
    # size=0 and fail_fast: requests while the server is down fail at once;
    # the retry they asked for still runs, so once the server is back the
    # pool serves again.
    srv = throwaway_mariadb
    pool = Pool(srv.dsn, size=0, max_size=2, fail_fast=True, timeout=2, connect_timeout=1,
                reconnect_interval=0.05, reconnect_max_interval=0.1)
    assert (await pool.execute("SELECT 1")).fetchone() == (1,)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, srv.kill)
    for _ in range(3):
        with pytest.raises((PoolUnavailable, OperationalError)):
            await pool.execute("SELECT 1")
        await asyncio.sleep(0.05)
    await loop.run_in_executor(None, srv.restart)
    for _ in range(100):
        try:
            assert (await pool.execute("SELECT 1")).fetchone() == (1,)
            break
        except (PoolUnavailable, OperationalError):
            await asyncio.sleep(0.05)
    else:
        pytest.fail("the pool never reconnected")
    await pool.close()
