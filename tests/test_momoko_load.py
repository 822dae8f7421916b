"""100 concurrent handlers on a 10-connection pool through tornpool.momoko.

The demo app's handlers (``@gen.coroutine`` ones running ``db.execute``,
``async def`` ones holding a ``getconn()`` connection for two statements)
serve 100 HTTP clients at once, five requests each, every request sleeping
10 ms on the server.  Sampled from a thread, the server never sees more than
10 connections of ours; after ``close()`` it sees none; and FIFO hand-out
keeps the slowest request within 3x the median.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from demos.momoko_app import make_app, make_pool
from test_momoko_demo import served
from test_momoko_util import DATABASE, USER, MomokoServer, momoko_server, wait_count
from test_pool_faults import ServerCounter

HANDLERS = 100
ROUNDS = 5


@pytest.fixture(scope="module")
def mserver() -> Iterator[MomokoServer]:
    with momoko_server() as server:
        yield server


class Load:
    """``HANDLERS`` HTTP clients at once against an app's handlers, ``ROUNDS``
    requests each, alternating between two paths; latencies and the
    ``style`` each page reported."""

    def __init__(self, paths: tuple[str, str]) -> None:
        self.paths = paths
        self.base = ""
        self.latencies: list[float] = []
        self.styles: dict[str, int] = {}

    async def run(self, app: Any) -> None:
        """Serve ``app`` and run the clients against it."""
        client = AsyncHTTPClient(force_instance=True, max_clients=HANDLERS)
        try:
            async with served(app) as self.base:
                await asyncio.gather(*[self._client(client, i) for i in range(HANDLERS)])
        finally:
            client.close()

    async def _client(self, client: AsyncHTTPClient, i: int) -> None:
        for r in range(ROUNDS):
            path = self.paths[(i + r) % 2]
            start = time.monotonic()
            resp = await client.fetch(self.base + path, request_timeout=60)
            self.latencies.append(time.monotonic() - start)
            style = json.loads(resp.body)["style"]
            self.styles[style] = self.styles.get(style, 0) + 1

    def check(self, name: str, counter: ServerCounter) -> None:
        """The three claims, plus: both handler styles ran, the pool used its 10."""
        half = HANDLERS * ROUNDS // 2
        assert sorted(self.styles.values()) == [half, half], self.styles
        assert counter.samples > 20
        assert counter.max <= 10, "the server saw %d connections" % counter.max
        assert counter.max == 10  # and the pool did stretch to its cap under this load
        median, worst = statistics.median(self.latencies), max(self.latencies)
        print("%s facade: %d requests, median %.1f ms, max %.1f ms, server peak %d"
              % (name, len(self.latencies), median * 1000, worst * 1000, counter.max))
        assert worst <= 3 * median, "max %.3f s > 3 x median %.3f s" % (worst, median)


@pytest.mark.gen_test(timeout=120)
async def test_100_handlers_on_10_connections(mserver: MomokoServer) -> None:
    db = make_pool(f"dbname={DATABASE} user={USER} password= host=127.0.0.1 port={mserver.server.port}")
    assert db.max_size == 10
    await db.connect()
    app = make_app()
    app.db = db  # type: ignore[attr-defined]
    load = Load(("/query?sleep=0.01", "/async?sleep=0.01"))
    try:
        with ServerCounter(mserver.server, USER) as counter:
            await load.run(app)
    finally:
        db.close()
        await db.wait_closed()
    assert await wait_count(mserver, 0, timeout=5) == 0
    load.check("momoko", counter)
