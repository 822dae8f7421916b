"""demos/tormysql_app.py: TorMySQL-style handlers (``@gen.coroutine`` +
``yield`` on ``helpers.ConnectionPool``, ``async def`` with ``async with``)
serve real queries through tornpool.tormysql, and its ``main()`` runs."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import pytest
from tornado.httpclient import AsyncHTTPClient

from demos.tormysql_app import SCHEMA, make_app, make_pool
from test_momoko_demo import run_demo_main, served
from test_tormysql_util import TorMySQLServer, tormysql_server


@pytest.fixture(scope="module")
def tserver() -> Iterator[TorMySQLServer]:
    with tormysql_server() as server:
        yield server


@pytest.mark.gen_test(timeout=60)
async def test_tormysql_demo_pages(tserver: TorMySQLServer) -> None:
    pool = make_pool(**tserver.params())
    await pool.execute(SCHEMA)
    client = AsyncHTTPClient()
    try:
        async with served(make_app(pool)) as base:
            await check_pages(client, base)
    finally:
        client.close()
        await pool.close()


async def check_pages(client: AsyncHTTPClient, base: str) -> None:
    """Every page of the demo, with what its handler must have done."""
    async def page(path: str, **kwargs: object) -> str:
        return (await client.fetch(base + path, **kwargs)).body.decode()  # type: ignore[arg-type]

    for path, style in (("/query?sleep=0.01", "gen"), ("/async?sleep=0.01", "async")):
        body = json.loads(await page(path))
        assert (body["style"], body["slept"], type(body["connection_id"])) == (style, True, int)
    assert json.loads(await page("/connection")) == {"same_connection": True}
    assert await page("/transaction", method="POST", body=urllib.parse.urlencode({"data": "kept"})) == "committed"
    resp = await client.fetch(base + "/transaction", method="POST", raise_error=False,
                              body=urllib.parse.urlencode({"data": "fail"}))
    assert (resp.code, resp.body) == (400, b"rolled back")
    rows = await page("/rows")
    assert "kept" in rows and "fail" not in rows
    assert json.loads(await page("/stream?count=5000")) == {"rows": 5000, "last": 5000}


def test_tormysql_demo_main(tserver: TorMySQLServer) -> None:
    dsn = f"mysql://tormysql@127.0.0.1:{tserver.server.port}/test"
    body = run_demo_main("demos.tormysql_app", dsn, "/connection", tserver)
    assert json.loads(body) == {"same_connection": True}
