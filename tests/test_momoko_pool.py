"""Momoko's pool-shape scenarios through the facade: ``MomokoPoolTest``,
``MomokoPoolParallelTest(+Proxy)``, ``MomokoPoolStretchTest(+Proxy)``,
``MomokoPoolShrinkTest`` and ``MomokoPoolPartiallyConnectedTest``.

Momoko counted its own ``db.conns``; here connections are counted on the
server (the ``momoko`` user's rows in ``information_schema.processlist``).
Timing claims are concurrency proofs with generous bounds: N ``SLEEP(0.5)``
on N connections end in well under N x 0.5 s, queued ones in no less than
the number of rounds x 0.5 s.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tornpool.momoko as momoko
from test_pool_faults import ServerCounter
from test_momoko_util import (
    BAD_DSN,
    SLEEP,
    USER,
    MomokoServer,
    Route,
    blocking,
    momoko_server,
    opened_pool,
    wait_count,
)


@pytest.fixture(scope="module")
def mserver() -> Iterator[MomokoServer]:
    with momoko_server() as server:
        yield server


@pytest.fixture
def route(request: Any, mserver: MomokoServer) -> Iterator[Route]:
    r = Route(getattr(request, "param", "direct"), mserver)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(autouse=True)
def nothing_left_open(mserver: MomokoServer) -> Iterator[None]:
    """Every test leaves the server without connections of ours."""
    yield
    mserver.assert_none_left()


BOTH = pytest.mark.parametrize("route", ["direct", "proxy"], indirect=True)


async def run_parallel_queries(db: momoko.Pool, jobs: int | None = None) -> float:
    """Momoko's ``run_parallel_queries``: ``jobs`` (default ``max(size,
    max_size)``) SLEEPs at once; checks they overlapped as far as the pool's
    connections allow, and returns the time taken."""
    jobs = jobs or max(db.size, db.max_size)
    rounds = math.ceil(jobs / db.max_size)
    start = time.monotonic()
    cursors = await asyncio.gather(*[db.execute("SELECT SLEEP(%s)" % SLEEP) for _ in range(jobs)])
    elapsed = time.monotonic() - start
    assert [c.fetchone() for c in cursors] == [(0,)] * jobs
    assert elapsed >= rounds * SLEEP * 0.95, "%d jobs cannot finish in %.2f s" % (jobs, elapsed)
    assert elapsed < rounds * SLEEP + 0.6, "Query execution was too long: %.2f s" % elapsed
    return elapsed


# -- MomokoPoolTest ------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_connect(route: Route, mserver: MomokoServer) -> None:
    db = momoko.Pool(route.dsn, size=3, raise_connect_errors=False)
    assert await db.connect() is db
    try:
        assert await blocking(mserver.count) == 3
        assert db.server_version is not None and db.server_version > 100000
    finally:
        db.close()
        await db.wait_closed()


# -- MomokoPoolParallelTest(+Proxy): size 1, and again as in ShrinkTest: size 2, max 5 -----

SHAPES = pytest.mark.parametrize("shape", [(1, None), (2, 5)], ids=["size1", "size2-max5"])


@BOTH
@SHAPES
@pytest.mark.gen_test(timeout=30)
async def test_parallel_queries(route: Route, shape: tuple[int, int | None]) -> None:
    size, max_size = shape
    async with opened_pool(route.dsn, size=size, max_size=max_size) as db:
        await run_parallel_queries(db)
        await run_parallel_queries(db)  # and again: connections are reused


@BOTH
@SHAPES
@pytest.mark.gen_test(timeout=30)
async def test_request_queueing(route: Route, shape: tuple[int, int | None]) -> None:
    """Twice as many jobs as connections: they queue, two rounds."""
    size, max_size = shape
    async with opened_pool(route.dsn, size=size, max_size=max_size) as db:
        await run_parallel_queries(db, db.max_size * 2)


@pytest.mark.fault
@BOTH
@SHAPES
@pytest.mark.gen_test(timeout=30)
async def test_parallel_queries_after_reconnect_all(route: Route, shape: tuple[int, int | None]) -> None:
    size, max_size = shape
    async with opened_pool(route.dsn, size=size, max_size=max_size) as db:
        await route.shutter()
        await run_parallel_queries(db)


@pytest.mark.fault
@BOTH
@pytest.mark.gen_test(timeout=30)
async def test_parallel_queries_after_reconnect_some(route: Route, mserver: MomokoServer) -> None:
    """Half of the connections die (a KILL of those; the proxy cannot pick)."""
    async with opened_pool(route.dsn, size=4) as db:
        ids = await blocking(mserver.thread_ids)
        await blocking(mserver.run, *["KILL %d" % tid for tid in ids[:2]])
        await asyncio.sleep(0.05)
        await run_parallel_queries(db)


# -- MomokoPoolStretchTest(+Proxy): size 1, max 5 ----------------------------------------------


async def stretch_to_the_load(db: momoko.Pool, mserver: MomokoServer) -> None:
    """Momoko's stretch ``test_parallel_queries``: 4 parallel jobs on a
    size 1 / max 5 pool stretch it to exactly 4 connections."""
    jobs = db.max_size - 1
    with ServerCounter(mserver.server, USER) as counter:
        await run_parallel_queries(db, jobs)
    assert counter.max == jobs
    assert await blocking(mserver.count) == jobs


STRETCH = {"size": 1, "max_size": 5}


async def dont_stretch(db: momoko.Pool, mserver: MomokoServer) -> None:
    """Three sequential queries need one connection: the pool stays at its
    size (Momoko opened one more; the facade opens none)."""
    for _ in range(3):
        assert (await db.execute("SELECT 6, 19, 24;")).fetchall() == [(6, 19, 24)]
    assert await blocking(mserver.count) == db.size


#: (Momoko's name, every connection dies first, the check).
STRETCHES = [
    ("test_stretch_parallel_queries", False, stretch_to_the_load),
    ("test_stretch_after_disonnect", True, stretch_to_the_load),
    ("test_dont_stretch", False, dont_stretch),
    ("test_dont_stretch_after_reconnect", True, dont_stretch),
]


@pytest.mark.fault
@BOTH
@pytest.mark.parametrize("name, shutter, check", STRETCHES, ids=[s[0][5:] for s in STRETCHES])
@pytest.mark.gen_test(timeout=30)
async def test_stretch(route: Route, mserver: MomokoServer, name: str, shutter: bool, check: Any) -> None:
    """StretchTest's test_parallel_queries, test_dont_stretch and their
    after-reconnect twins."""
    async with opened_pool(route.dsn, **STRETCH) as db:
        if shutter:
            await route.shutter()
        await check(db, mserver)


@BOTH
@pytest.mark.gen_test(timeout=30)
async def test_stretch_genconn(route: Route, mserver: MomokoServer) -> None:
    """Three simultaneous getconn() get three distinct connections."""
    async with opened_pool(route.dsn, **STRETCH) as db:
        f1, f2, f3 = db.getconn(), db.getconn(), db.getconn()
        await asyncio.gather(f1, f2, f3)
        conns = [f.result() for f in (f1, f2, f3)]
        futures = [c.execute("SELECT %d;" % (i + 1)) for i, c in enumerate(conns)]
        await asyncio.gather(*futures)
        assert [f.result().fetchone() for f in futures] == [(1,), (2,), (3,)]
        assert len({c.lease.thread_id for c in conns}) == 3  # type: ignore[union-attr]
        for conn in conns:
            db.putconn(conn)
        assert await blocking(mserver.count) == 3


@BOTH
@pytest.mark.gen_test(timeout=30)
async def test_stretch_never_beyond_max_size(route: Route, mserver: MomokoServer) -> None:
    """Twice max_size jobs: never more than max_size server connections."""
    async with opened_pool(route.dsn, **STRETCH) as db:
        with ServerCounter(mserver.server, USER) as counter:
            await run_parallel_queries(db, db.max_size * 2)
        assert counter.samples > 10
        assert counter.max == db.max_size


# -- MomokoPoolShrinkTest: size 2, max 5, shrink_delay 1 s -------------------------------------

SHRINK = {"size": 2, "max_size": 5, "auto_shrink": True,
          "shrink_delay": datetime.timedelta(seconds=1),
          "shrink_period": datetime.timedelta(milliseconds=500)}


async def five_at_once(db: momoko.Pool) -> None:
    futures = [db.execute("SELECT %d" % i) for i in range(1, 6)]
    cursors = await asyncio.gather(*futures)
    assert [c.fetchone()[0] for c in cursors] == [1, 2, 3, 4, 5]


@pytest.mark.gen_test(timeout=30)
async def test_pool_shrinking(route: Route, mserver: MomokoServer) -> None:
    """Stretched to 5 for five parallel queries; back to size once idle for
    shrink_delay."""
    async with opened_pool(route.dsn, **SHRINK) as db:
        await asyncio.sleep(0.05)
        await five_at_once(db)
        await asyncio.sleep(0.7)
        assert await blocking(mserver.count) == 5
        assert await wait_count(mserver, 2, timeout=3.0) == 2
        await asyncio.sleep(1.2)  # and never below size
        assert await blocking(mserver.count) == 2


@pytest.mark.gen_test(timeout=30)
async def test_pool_shrinking_with_shrink_delay(route: Route, mserver: MomokoServer) -> None:
    """Connections used again recently survive a shrink that closes the
    others: five, then three reused 0.9 s later -> three remain while the two
    unused ones expire, then size."""
    async with opened_pool(route.dsn, **SHRINK) as db:
        await asyncio.sleep(0.05)
        await five_at_once(db)
        await asyncio.sleep(0.9)
        assert await blocking(mserver.count) == 5
        reused = time.monotonic()
        cursors = await asyncio.gather(*[db.execute("SELECT %d" % i) for i in (1, 2, 3)])
        assert [c.fetchone()[0] for c in cursors] == [1, 2, 3]
        assert await wait_count(mserver, 3, timeout=1.5) == 3
        assert time.monotonic() - reused < 1.0, "the reused connections expired too"
        assert await wait_count(mserver, 2, timeout=3.0) == 2


# -- MomokoPoolPartiallyConnectedTest ---------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_partially_connected() -> None:
    db = momoko.Pool(BAD_DSN, size=3, raise_connect_errors=True)
    try:
        with pytest.raises(momoko.PartiallyConnectedError, match="3 connection") as info:
            await db.connect()
        assert isinstance(info.value, momoko.PoolError)
        assert isinstance(info.value.__cause__, momoko.OperationalError)
        assert not db.closed  # the pool stays open and keeps trying, as Momoko's
    finally:
        db.close()
        await db.wait_closed()
