"""demos/greentor_app.py: greentor-style handlers answer, and requests blocked
in the server wait there together while the loop keeps serving."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from demos.greentor_app import create_schema, make_app
from greentor_compat import green, mysql
from tornpool import parse_dsn


@pytest.fixture
def params(mariadb_dsn: str) -> Iterator[dict[str, Any]]:
    kw = parse_dsn(mariadb_dsn)
    kw["autocommit"] = True
    with mysql.patched():
        yield kw


def waiting_on_lock(params: dict[str, Any]) -> int:
    conn = pymysql.connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.processlist "
                        "WHERE state LIKE 'Waiting for table%' AND info LIKE '%FROM notes%'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_demo_pages_and_requests_waiting_together(params: dict[str, Any]) -> None:
    pool = mysql.ConnectionPool(max_size=8, mysql_params=params)
    await green.spawn(create_schema, pool)
    sock, port = bind_unused_port()
    server = HTTPServer(make_app(params, pool))
    server.add_sockets([sock])
    client = AsyncHTTPClient()
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    try:
        marker = f"note-{time.time_ns()}"
        body = urllib.parse.urlencode({"name": "tester", "message": marker})
        resp = await client.fetch(base + "/sign", method="POST", body=body, follow_redirects=False,
                                  raise_error=False)
        assert resp.code == 302
        for path, how in (("/", "a connection per request"), ("/pool", "a pooled connection")):
            text = (await client.fetch(base + path)).body.decode()
            assert how in text and marker in text and "MariaDB" in text

        start = time.monotonic()
        slow = await asyncio.gather(*[client.fetch(base + "/slow") for _ in range(4)])
        assert all(b'"slept": true' in r.body for r in slow)
        assert time.monotonic() - start < 3.5  # four SLEEP(1) overlap

        # Lock the table from outside: six requests (three per style) block in
        # the server, all at the same time, and the loop still answers /ping.
        locker = pymysql.connect(**params)
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES notes WRITE")
        blocked = [client.fetch(base + path, request_timeout=30) for path in ["/", "/pool"] * 3]
        deadline = time.monotonic() + 10
        while await loop.run_in_executor(None, waiting_on_lock, params) < 6:
            assert time.monotonic() < deadline, "the requests did not all reach the server"
            await asyncio.sleep(0.05)
        ping_start = time.monotonic()
        assert (await client.fetch(base + "/ping")).body == b"pong"
        assert time.monotonic() - ping_start < 1.0
        assert not any(f.done() for f in blocked)
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        locker.close()
        answers = await asyncio.gather(*blocked)
        assert all(marker in r.body.decode() for r in answers)
    finally:
        server.stop()
        client.close()
        await green.spawn(pool.quit)
