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


def test_demo_on_a_taken_port_says_which_and_how_to_pick_another() -> None:
    import socket
    import subprocess
    import sys

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        run = subprocess.run([sys.executable, "-m", "demos.app", "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert run.returncode == 1
    assert f"127.0.0.1:{port}" in run.stderr and "--port" in run.stderr
    assert "Traceback" not in run.stderr
