"""demos/momoko_app.py: Momoko-style handlers (``@gen.coroutine`` + ``yield``,
and ``async def``) serve real queries through tornpool.momoko, and its
``main()`` -- Momoko's connect-before-the-loop start-up -- runs as written."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from demos.momoko_app import SCHEMA, make_app, make_pool
from test_momoko_util import DATABASE, MomokoServer, PreparedServer, momoko_server


@pytest.fixture(scope="module")
def mserver() -> Iterator[MomokoServer]:
    with momoko_server() as server:
        yield server


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; its base URL."""
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.gen_test(timeout=60)
async def test_momoko_demo_pages(mserver: MomokoServer) -> None:
    db = make_pool(f"dbname={DATABASE} user=momoko password= host=127.0.0.1 port={mserver.server.port}")
    await db.connect()
    await db.execute(SCHEMA)
    await db.register_json()
    app = make_app()
    app.db = db  # type: ignore[attr-defined]
    client = AsyncHTTPClient()
    try:
        async with served(app) as base:
            async def page(path: str) -> str:
                return (await client.fetch(base + path)).body.decode()

            body = json.loads(await page("/query?sleep=0.01"))
            assert (body["style"], body["slept"], type(body["connection_id"])) == ("gen", True, int)
            body = json.loads(await page("/async"))
            assert body["style"] == "async" and body["same_connection"] is True
            assert "SELECT 1, 'it\\'s';" in (await page("/mogrify")).replace("&#x27;", "'")
            assert "Query 2 results: [(49, &#x27;STR&#x27;, 23, 11)]" in await page("/transaction")
            multi = await page("/multi_query")
            assert "Query 1 results: [(1,)]" in multi and "SELECT 2;" in multi and "[(3,)]" in multi
            assert (await page("/connection")).count("Query") == 3
            assert "&quot;a&quot;: &quot;b&quot;" in await page("/json")
            marker = f"hello-{time.time_ns()}"
            resp = await client.fetch(base + "/sign", method="POST", follow_redirects=False,
                                      raise_error=False,
                                      body=urllib.parse.urlencode({"name": "tester", "message": marker}))
            assert resp.code == 302
            assert marker in await page("/guestbook")
    finally:
        client.close()
        db.close()
        await db.wait_closed()


def run_demo_main(module: str, dsn: str, path: str, server: PreparedServer) -> str:
    """Start ``python -m module --dsn dsn`` (warnings are errors), fetch
    ``path``, stop it with SIGTERM; the page's body.  It must exit cleanly
    and close every connection it opened on ``server``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = dict(os.environ, PYTHONWARNINGS="error")
    proc = subprocess.Popen([sys.executable, "-m", module, "--dsn", dsn, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line + (proc.stderr.read() if proc.stderr else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            body = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    server.assert_none_left()
    return body


def test_momoko_demo_main_runs_as_momoko_apps_start(mserver: MomokoServer) -> None:
    dsn = f"dbname={DATABASE} user=momoko password= host=127.0.0.1 port={mserver.server.port}"
    assert run_demo_main("demos.momoko_app", dsn, "/connection", mserver).count("Query") == 3
