"""The demo app serves pages whose handlers ran real queries."""

from __future__ import annotations

import asyncio
import time
import urllib.parse

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

from demos.app import SCHEMA, make_app
from tornpool import Pool


@pytest.mark.gen_test(timeout=60)
async def test_demo_pages(mariadb_dsn: str) -> None:
    async with Pool(mariadb_dsn, size=1, max_size=6, name="demo-test") as pool:
        await pool.execute(SCHEMA)
        sock, port = bind_unused_port()
        from tornado.httpserver import HTTPServer

        server = HTTPServer(make_app(pool))
        server.add_sockets([sock])
        client = AsyncHTTPClient()
        base = f"http://127.0.0.1:{port}"
        try:
            marker = f"hello-{time.time_ns()}"
            body = urllib.parse.urlencode({"name": "tester", "message": marker})
            resp = await client.fetch(base + "/sign", method="POST", body=body, follow_redirects=False,
                                      raise_error=False)
            assert resp.code == 302
            for path, style in (("/", "async def + await"), ("/classic", "@gen.coroutine + yield")):
                page = (await client.fetch(base + path)).body.decode()
                assert style in page
                assert marker in page  # read back from the database
                assert "MariaDB" in page or "mysql" in page.lower()
            start = time.monotonic()
            slow = await asyncio.gather(*[client.fetch(base + "/slow") for _ in range(4)])
            assert all(b'"slept": true' in r.body for r in slow)
            assert time.monotonic() - start < 3.5  # four SLEEP(1) overlap
            stats = (await client.fetch(base + "/stats")).body.decode()
            assert 'pool_size{pool="demo-test"}' in stats
        finally:
            server.stop()
            client.close()
