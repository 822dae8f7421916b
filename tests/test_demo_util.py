"""Helpers of the demo's tests (no tests here): a database of its own on the
shared server, the shop served on a free port, the form's XSRF token."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pymysql
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from demos.shop import Shop, make_app
from tornpool import Pool, parse_dsn


def with_database(dsn: str, database: str) -> str:
    """``dsn`` naming ``database`` instead of its own."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new, empty database on ``server_dsn``'s server for the duration;
    yields its DSN.  (The demo's tables never meet another test's.)"""
    name = "demo_" + uuid.uuid4().hex[:12]
    kwargs = parse_dsn(server_dsn)
    kwargs.pop("database", None)
    admin = pymysql.connect(**kwargs, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        yield with_database(server_dsn, name)
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}")
    finally:
        admin.close()


@dataclass
class Served:
    base: str
    shop: Shop
    client: AsyncHTTPClient


@contextlib.asynccontextmanager
async def serve_shop(dsn: str, *, size: int = 2, max_size: int = 6, interval: float = 0.1,
                     window: float = 2.0) -> AsyncIterator[Served]:
    """The shop on a free loopback port, on the running loop."""
    async with Pool(dsn, size=size, max_size=max_size, timeout=10, name="shop") as pool, \
            Pool(dsn, size=1, name="admin") as admin, \
            Shop(pool, admin, interval=interval, window=window) as shop:
        sock, port = bind_unused_port()
        server = HTTPServer(make_app(shop))
        server.add_sockets([sock])
        client = AsyncHTTPClient(force_instance=True)
        try:
            yield Served(f"http://127.0.0.1:{port}", shop, client)
        finally:
            server.stop()
            await shop.stop()
            await server.close_all_connections()
            client.close()


def xsrf_from(response: HTTPResponse) -> tuple[str, str]:
    """``(Cookie header, form token)`` from a page with a form."""
    cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    match = re.search(r'name="_xsrf" value="([^"]+)"', response.body.decode())
    assert match, "the page has no XSRF field"
    return cookie, match.group(1)
