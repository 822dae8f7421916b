"""Momoko's server-down scenarios through the facade: ``MomokoPoolVolatileDbTest``
and ``MomokoPoolVolatileDbTestProxy``, and the user complaints the spec lists
(#147 getconn hanging after a restart, #11/#129 no recovery, #45 a stuck
queue, #51/#149 a dead or busy connection handed out).

Each test owns its server.  The outage is either a fault proxy that refuses
new connections and resets the open ones (``proxy``; Momoko killed its
tcproxy), or the server itself killed with SIGKILL and later restarted on the
same port (``kill9``).  Momoko changed ``conn.dsn`` on dead connections to
make reconnects fail or succeed; here the server goes away and comes back.
None of these may hang: every test has a timeout, and each wait for a typed
error is also timed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

import tornpool.momoko as momoko
from test_momoko_util import BAD_DSN, LOCAL_BAD_DSN, blocking, libpq_dsn, opened_pool
from tornpool.testing import FaultProxy, MariaDBServer

pytestmark = pytest.mark.fault

#: Momoko's default, in ms; attempts are 1 to 5/3 of it apart (jitter).
INTERVAL_MS = 500
RECOVERY = INTERVAL_MS / 1000 * 5 / 3 + 0.2


class Outage:
    """A server that can go away and come back."""

    def __init__(self, kind: str, server: MariaDBServer) -> None:
        self.kind = kind
        self.server = server
        self.proxy: FaultProxy | None = None
        port = server.port
        if kind == "proxy":
            self.proxy = FaultProxy.for_server(server).start()
            port = self.proxy.port
        self.dsn = libpq_dsn("127.0.0.1", port, user="root", database="test")

    async def down(self) -> None:
        if self.proxy is not None:
            self.proxy.refuse()
            self.proxy.reset_all()
        else:
            await blocking(self.server.kill)
        await asyncio.sleep(0.05)  # the loop sees the hang-ups

    async def up(self) -> None:
        if self.proxy is not None:
            self.proxy.accept_again()
        else:
            await blocking(self.server.restart)

    def down_now(self) -> None:
        """:meth:`down` from a Future's callback (blocks the loop briefly, as
        Momoko's test did)."""
        if self.proxy is not None:
            self.proxy.refuse()
            self.proxy.reset_all()
        else:
            self.server.kill()


@pytest.fixture(params=["proxy", "kill9"])
def outage(request: Any, throwaway_mariadb: MariaDBServer) -> Iterator[Outage]:
    o = Outage(request.param, throwaway_mariadb)
    try:
        yield o
    finally:
        if o.proxy is not None:
            o.proxy.stop()


async def fails_fast(fut: Any, within: float = 1.0) -> BaseException:
    """The error ``fut`` fails with, which must come within ``within`` seconds."""
    start = time.monotonic()
    with pytest.raises(momoko.DatabaseError) as info:
        await asyncio.wait_for(fut, within + 5)
    elapsed = time.monotonic() - start
    assert elapsed < within, "took %.2f s to fail" % elapsed
    return info.value


def waiting(db: momoko.Pool) -> int:
    return db.native.stats()["requests_waiting"]


# -- MomokoPoolVolatileDbTest ------------------------------------------------------------


@pytest.mark.parametrize("dsn", [BAD_DSN, LOCAL_BAD_DSN], ids=["tcp", "local"])
@pytest.mark.gen_test(timeout=20)
async def test_startup(dsn: str) -> None:
    """test_startup / test_startup_local: a pool on a bad DSN connects (without
    raise_connect_errors) with every connection dead, and requests fail fast."""
    async with opened_pool(dsn, size=3) as db:
        assert db.native.connections() == []
        exc = await fails_fast(db.execute("SELECT 1"))
        assert isinstance(exc, momoko.Pool.DatabaseNotAvailable)
        assert isinstance(exc.__cause__, momoko.OperationalError)


@pytest.mark.gen_test(timeout=30)
async def test_reconnect(outage: Outage) -> None:
    """Every connection dies with the server; once it is back, queries work."""
    async with opened_pool(outage.dsn, size=3) as db:
        await outage.down()
        await outage.up()
        deadline = time.monotonic() + RECOVERY + 2
        while True:
            try:
                cursor = await db.execute("SELECT 6, 19, 24;")
                break
            except momoko.DatabaseNotAvailable:
                assert time.monotonic() < deadline, "no recovery after the server came back"
                await asyncio.sleep(0.05)
        assert cursor.fetchall() == [(6, 19, 24)]


@pytest.mark.gen_test(timeout=30)
async def test_reconnect_interval_good_path(outage: Outage) -> None:
    """The database is down at start-up; it comes back; within the reconnect
    interval (at most 5/3 of it, jittered) the pool has reconnected by itself."""
    await outage.down()
    async with opened_pool(outage.dsn, size=3, reconnect_interval=INTERVAL_MS) as db:
        assert db.native.connections() == []
        await outage.up()
        await asyncio.sleep(RECOVERY)
        cursor = await db.execute("SELECT 6, 19, 24;")
        assert cursor.fetchall() == [(6, 19, 24)]


@pytest.mark.gen_test(timeout=30)
async def test_reconnect_interval_bad_path(outage: Outage) -> None:
    """Back up, but the last attempt failed less than reconnect_interval ago:
    the pool does not retry yet, so the request fails at once."""
    await outage.down()
    async with opened_pool(outage.dsn, size=3, reconnect_interval=3000) as db:
        await outage.up()
        exc = await fails_fast(db.execute("SELECT 1"), within=0.5)
        assert isinstance(exc, momoko.DatabaseNotAvailable)


@pytest.mark.gen_test(timeout=30)
async def test_ping_error(outage: Outage) -> None:
    """Every connection dead and the server unreachable: getconn() raises
    DatabaseNotAvailable, quickly."""
    async with opened_pool(outage.dsn, size=3) as db:
        await outage.down()
        exc = await fails_fast(db.getconn(), within=INTERVAL_MS / 1000 * 2)
        assert isinstance(exc, db.DatabaseNotAvailable)


@pytest.mark.gen_test(timeout=30)
async def test_abort_waiting_queue(outage: Outage) -> None:
    """Size 1, requests waiting; when the first completes everything dies.
    tornpool hands the connection to the next waiter before the first
    request's callbacks run, so that one (a SLEEP, still running) dies with its
    connection: OperationalError, as in Momoko's proxy variant.  The one still
    waiting then fails with DatabaseNotAvailable, as in Momoko's direct
    variant; the queue is empty."""
    async with opened_pool(outage.dsn, size=1) as db:
        f1 = db.execute("SELECT 1")
        f2 = db.execute("SELECT SLEEP(0.3)")
        f3 = db.execute("SELECT 1")
        assert waiting(db) == 2
        f1.add_done_callback(lambda f: outage.down_now())
        results = await asyncio.wait_for(asyncio.gather(f1, f2, f3, return_exceptions=True), 10)
        assert results[0].fetchone() == (1,)
        assert isinstance(results[1], momoko.OperationalError)
        assert isinstance(results[2], momoko.Pool.DatabaseNotAvailable)
        assert waiting(db) == 0
        with pytest.raises(momoko.Pool.DatabaseNotAvailable):
            f3.result()


@pytest.mark.gen_test(timeout=20)
async def test_execute_can_start_before_connection_is_done(outage: Outage) -> None:
    db = momoko.Pool(outage.dsn, size=1)
    f = db.connect()
    try:
        cursor = await db.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1
        assert await f is db
    finally:
        db.close()
        await db.wait_closed()


@pytest.mark.gen_test(timeout=20)
async def test_execute_before_connection_is_done_will_error() -> None:
    db = momoko.Pool(BAD_DSN, size=1)
    f = db.connect()
    try:
        await fails_fast(db.execute("SELECT 1"))
        with pytest.raises(momoko.PartiallyConnectedError):
            await f
    finally:
        db.close()
        await db.wait_closed()


# -- MomokoPoolVolatileDbTestProxy extras --------------------------------------------------


async def lose_a_query(db: momoko.Pool, outage: Outage) -> None:
    """f1 is running when the server goes away: it fails typed."""
    f1 = db.execute("SELECT SLEEP(0.5)")
    await asyncio.sleep(0.1)
    await outage.down()
    with pytest.raises(momoko.OperationalError):
        await asyncio.wait_for(f1, 5)


@pytest.mark.gen_test(timeout=30)
async def test_execute_can_wait_for_connection_after_disconnect(outage: Outage) -> None:
    async with opened_pool(outage.dsn, size=1, reconnect_interval=INTERVAL_MS) as db:
        await lose_a_query(db, outage)
        await outage.up()
        await asyncio.sleep(RECOVERY)
        f2, f3 = db.execute("SELECT 1"), db.execute("SELECT 1")
        cursors = await asyncio.gather(f2, f3)
        assert [c.fetchone()[0] for c in cursors] == [1, 1]


@pytest.mark.gen_test(timeout=30)
async def test_execute_can_fail_after_disconnect_with_no_reconnect(outage: Outage) -> None:
    async with opened_pool(outage.dsn, size=1, reconnect_interval=INTERVAL_MS) as db:
        await lose_a_query(db, outage)
        await asyncio.sleep(INTERVAL_MS / 1000)
        exc = await fails_fast(db.execute("SELECT 1"))
        assert isinstance(exc, momoko.DatabaseNotAvailable)
        assert waiting(db) == 0


@pytest.mark.gen_test(timeout=30)
async def test_getconn_can_fail_after_disconnect_with_no_reconnect(outage: Outage) -> None:
    """Momoko #147: getconn() must fail, not hang, while the server stays away."""
    async with opened_pool(outage.dsn, size=1, reconnect_interval=INTERVAL_MS) as db:
        f1 = db.getconn()
        conn = await f1
        db.putconn(conn)
        await outage.down()
        await asyncio.sleep(INTERVAL_MS / 1000)
        exc = await fails_fast(db.getconn())
        assert isinstance(exc, momoko.DatabaseNotAvailable)
        assert waiting(db) == 0


# -- the complaints -------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_getconn_after_a_server_restart_never_hangs(throwaway_mariadb: MariaDBServer) -> None:
    """Momoko #147 and #11/#129: kill -9, restart; getconn() fails fast while
    the server is away and works again once it is back -- every call ends."""
    outage = Outage("kill9", throwaway_mariadb)
    async with opened_pool(outage.dsn, size=2, max_size=4) as db:
        held = await db.getconn()
        await outage.down()
        db.putconn(held)  # dead: dropped, not handed out again
        await fails_fast(db.getconn(), within=INTERVAL_MS / 1000 * 2)
        await outage.up()
        deadline = time.monotonic() + RECOVERY + 2
        while True:
            try:
                conn = await asyncio.wait_for(db.getconn(), 5)
                break
            except momoko.DatabaseNotAvailable:
                assert time.monotonic() < deadline, "no recovery after the restart"
                await asyncio.sleep(0.05)
        with db.manage(conn):
            assert (await conn.execute("SELECT 1")).fetchall() == [(1,)]


@pytest.mark.gen_test(timeout=60)
async def test_queue_is_never_stuck(outage: Outage) -> None:
    """Momoko #45: requests queued behind busy connections when the server
    dies all end -- with results or typed errors -- and the pool serves new
    requests once the server is back."""
    async with opened_pool(outage.dsn, size=2, max_size=2) as db:
        queued = [db.execute("SELECT SLEEP(0.3)") for _ in range(12)]
        await asyncio.sleep(0.1)
        assert waiting(db) == 10
        await outage.down()
        results = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 10)
        assert all(isinstance(r, momoko.DatabaseError) or r.fetchone() == (0,) for r in results)
        assert any(isinstance(r, momoko.DatabaseError) for r in results)
        assert waiting(db) == 0
        await outage.up()
        await asyncio.sleep(RECOVERY)
        cursors = await asyncio.gather(*[db.execute("SELECT 2") for _ in range(6)])
        assert [c.fetchone() for c in cursors] == [(2,)] * 6


@pytest.mark.gen_test(timeout=30)
async def test_no_dead_or_busy_connection_is_handed_out(outage: Outage) -> None:
    """Momoko #51/#149: a connection running a query is never handed out again,
    and connections that died idle are not handed out (even with ping=False)."""
    async with opened_pool(outage.dsn, size=2, max_size=3) as db:
        busy = await db.getconn()
        running = busy.execute("SELECT SLEEP(0.3)")
        other = await db.getconn(ping=False)
        assert other.lease.thread_id != busy.lease.thread_id  # type: ignore[union-attr]
        db.putconn(other)
        assert (await running).fetchone() == (0,)
        db.putconn(busy)
        idle = [c["id"] for c in db.native.connections()]
        await blocking(kill_threads, outage.server, idle)  # they die idle; the server stays
        await asyncio.sleep(0.05)
        fresh = await db.getconn(ping=False)
        with db.manage(fresh):
            assert fresh.lease.thread_id not in idle  # type: ignore[union-attr]
            assert (await fresh.execute("SELECT 3")).fetchall() == [(3,)]


def kill_threads(server: MariaDBServer, ids: list[int]) -> None:
    conn = pymysql.connect(**server.connect_kwargs())
    try:
        with conn.cursor() as cur:
            for tid in ids:
                cur.execute("KILL %d" % tid)
    finally:
        conn.close()
