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
import statistics
import time
from collections.abc import Iterator

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from demos.momoko_app import make_app, make_pool
from test_momoko_util import DATABASE, USER, MomokoServer, momoko_server, wait_count
from test_pool_faults import ServerCounter

HANDLERS = 100
ROUNDS = 5


@pytest.fixture(scope="module")
def mserver() -> Iterator[MomokoServer]:
    with momoko_server() as server:
        yield server


@pytest.mark.gen_test(timeout=120)
async def test_100_handlers_on_10_connections(mserver: MomokoServer) -> None:
    db = make_pool(f"dbname={DATABASE} user={USER} password= host=127.0.0.1 port={mserver.server.port}")
    assert db.max_size == 10
    await db.connect()
    app = make_app()
    app.db = db  # type: ignore[attr-defined]
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    client = AsyncHTTPClient(force_instance=True, max_clients=HANDLERS)
    latencies: list[float] = []
    styles: dict[str, int] = {}

    async def handler_client(i: int) -> None:
        for r in range(ROUNDS):
            path = "/query" if (i + r) % 2 else "/async"
            start = time.monotonic()
            resp = await client.fetch(f"http://127.0.0.1:{port}{path}?sleep=0.01", request_timeout=60)
            latencies.append(time.monotonic() - start)
            style = resp.body.decode().split('"style": "')[1].split('"')[0]
            styles[style] = styles.get(style, 0) + 1

    try:
        with ServerCounter(mserver.server, USER) as counter:
            await asyncio.gather(*[handler_client(i) for i in range(HANDLERS)])
    finally:
        server.stop()
        client.close()
        db.close()
        await db.wait_closed()
    assert styles == {"gen": HANDLERS * ROUNDS // 2, "async": HANDLERS * ROUNDS // 2}
    assert counter.samples > 20
    assert counter.max <= 10, "the server saw %d connections" % counter.max
    assert counter.max == 10  # and the pool did stretch to its cap under this load
    assert await wait_count(mserver, 0, timeout=5) == 0
    median, worst = statistics.median(latencies), max(latencies)
    print("momoko facade: %d requests, median %.1f ms, max %.1f ms, server peak %d"
          % (len(latencies), median * 1000, worst * 1000, counter.max))
    assert worst <= 3 * median, "max %.3f s > 3 x median %.3f s" % (worst, median)
