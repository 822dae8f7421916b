"""The demo shop over HTTP: pages in both handler styles, forms, the JSON
API, the order transaction, the streaming export (real server, real HTTP)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from demos.shop.api import EXPORT_CHUNK
from test_demo_util import Served, fresh_database, serve_shop, xsrf_from


@pytest.fixture
def shop_dsn(mariadb_dsn: str) -> Iterator[str]:
    with fresh_database(mariadb_dsn) as dsn:
        yield dsn


async def fetch(s: Served, path: str, **kwargs: Any) -> HTTPResponse:
    kwargs.setdefault("raise_error", False)
    kwargs.setdefault("follow_redirects", False)
    return await s.client.fetch(s.base + path, **kwargs)


async def api(s: Served, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await fetch(s, path, method=method, headers={"Content-Type": "application/json"},
                       body=None if body is None else json.dumps(body))
    return resp.code, json.loads(resp.body)


async def stock_of(s: Served, sku: str) -> int:
    _, body = await api(s, "GET", "/api/products")
    stock: int = next(p["stock"] for p in body["products"] if p["sku"] == sku)
    return stock


@pytest.mark.gen_test(timeout=60)
async def test_pages_in_both_styles_read_the_database(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn) as s:
        home = await fetch(s, "/")
        assert home.code == 200
        page = home.body.decode()
        assert "async def + await" in page
        assert 'data-sku="MUG-01"' in page and "Tornado mug" in page  # a seed row, read back
        assert "MariaDB" in page
        orders = (await fetch(s, "/orders")).body.decode()
        assert "@gen.coroutine + yield" in orders
        assert '<span id="order-count">0</span>' in orders
        missing = await fetch(s, "/orders/999")
        assert missing.code == 404 and "no order 999" in missing.body.decode()


@pytest.mark.gen_test(timeout=60)
async def test_forms_round_trip_through_the_database(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn) as s:
        cookie, token = xsrf_from(await fetch(s, "/"))
        headers = {"Cookie": cookie}

        def form(**fields: Any) -> str:
            return urllib.parse.urlencode({"_xsrf": token, **fields})

        forged = await fetch(s, "/products", method="POST", body="sku=X-1&name=x&price=1&stock=1")
        assert forged.code == 403  # no XSRF token: refused before any query

        added = await fetch(s, "/products", method="POST", headers=headers,
                            body=form(sku="mug-02", name="Blue mug", price="9.5", stock="3"))
        assert added.code == 302 and added.headers["Location"] == "/?added=MUG-02"
        home = (await fetch(s, "/?added=MUG-02")).body.decode()
        assert 'data-sku="MUG-02"' in home and "Blue mug" in home and "9.50" in home

        _, body = await api(s, "GET", "/api/products")
        mug = next(p for p in body["products"] if p["sku"] == "MUG-02")
        placed = await fetch(s, "/orders/new", method="POST", headers=headers,
                             body=form(customer="Ada", product_id=mug["id"], qty=2))
        assert placed.code == 302
        order_page = (await fetch(s, placed.headers["Location"])).body.decode()
        assert "Thank you, Ada" in order_page and "@gen.coroutine + yield" in order_page
        assert '<th class="num" id="order-total">19.00</th>' in order_page
        assert await stock_of(s, "MUG-02") == 1

        refused = await fetch(s, "/orders/new", method="POST", headers=headers,
                              body=form(customer="Bob", product_id=mug["id"], qty=2))
        assert refused.code == 409
        assert "Blue mug: 2 wanted, 1 in stock" in refused.body.decode()
        assert await stock_of(s, "MUG-02") == 1

        bad = await fetch(s, "/products", method="POST", headers=headers,
                          body=form(sku="MUG-03", name="Red mug", price="cheap", stock="1"))
        assert bad.code == 400
        page = bad.body.decode()
        assert "price: a price like 12.50 is required" in page
        assert 'value="Red mug"' in page  # the form keeps what was typed


@pytest.mark.gen_test(timeout=60)
async def test_json_api_and_its_errors(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn) as s:
        code, body = await api(s, "POST", "/api/products",
                               {"sku": "CUP-1", "name": "Cup", "price": 250, "stock": 4})
        assert code == 201 and body["product"]["price_cents"] == 250
        pid = body["product"]["id"]
        assert (await api(s, "GET", f"/api/products/{pid}"))[1]["product"]["sku"] == "CUP-1"
        assert await api(s, "POST", "/api/products",
                         {"sku": "CUP-1", "name": "Cup", "price": 1, "stock": 1}) == \
            (409, {"error": "sku CUP-1 exists already"})
        assert await api(s, "POST", "/api/products", {"sku": "?", "name": "x", "price": 1, "stock": 1}) == \
            (400, {"error": "sku: letters, digits and dashes, like MUG-02"})
        code, body = await api(s, "GET", "/api/products/424242")
        assert (code, body) == (404, {"error": "no product 424242"})
        resp = await fetch(s, "/api/orders", method="POST", headers={"Content-Type": "application/json"},
                           body="{not json")
        assert resp.code == 400 and json.loads(resp.body)["error"].startswith("the body is not JSON")

        code, body = await api(s, "POST", "/api/orders", {
            "customer": "Eve", "items": [{"product_id": pid, "qty": 1}, {"product_id": pid, "qty": 2}]})
        assert code == 201
        order = body["order"]
        assert order["total_cents"] == 750 and [i["qty"] for i in order["items"]] == [3]
        assert (await api(s, "GET", f"/api/orders/{order['id']}"))[1]["order"] == order
        assert await stock_of(s, "CUP-1") == 1

        # Refused orders change nothing: the transaction rolled back.
        before = (await api(s, "GET", "/api/orders"))[1]["orders"]
        assert await api(s, "POST", "/api/orders", {"customer": "Eve", "items": [
            {"product_id": pid, "qty": 1}, {"product_id": 1, "qty": 1000}]}) == \
            (409, {"error": "Tornado mug: 1000 wanted, 40 in stock"})
        assert await api(s, "POST", "/api/orders", {"customer": "Eve", "items": [
            {"product_id": 999, "qty": 1}]}) == (404, {"error": "no product 999"})
        assert await api(s, "POST", "/api/orders", {"customer": "Eve", "items": []}) == \
            (400, {"error": "items: a non-empty list of {product_id, qty} is required"})
        assert (await api(s, "GET", "/api/orders"))[1]["orders"] == before
        assert await stock_of(s, "CUP-1") == 1 and await stock_of(s, "MUG-01") == 40


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_orders_never_sell_more_than_the_stock(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn, max_size=6) as s:
        code, body = await api(s, "POST", "/api/products",
                               {"sku": "LAST-5", "name": "Last five", "price": "1.00", "stock": 5})
        pid = body["product"]["id"]
        results = await asyncio.gather(*[
            api(s, "POST", "/api/orders", {"customer": f"c{i}", "items": [{"product_id": pid, "qty": 1}]})
            for i in range(12)])
        codes = sorted(code for code, _ in results)
        assert codes == [201] * 5 + [409] * 7
        assert await stock_of(s, "LAST-5") == 0


@pytest.mark.gen_test(timeout=60)
async def test_export_streams_every_item_in_chunks(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn) as s:
        pool = s.shop.pool
        n = EXPORT_CHUNK * 3 + 7
        await pool.executemany("INSERT INTO customer_order (customer, total_cents) VALUES (%s, %s)",
                               [(f"bulk{i}", 400) for i in range(n)])
        first = (await pool.execute("SELECT MIN(id) FROM customer_order")).fetchone()[0]
        await pool.execute(
            "INSERT INTO order_item (order_id, product_id, qty, price_cents) "
            "SELECT o.id, p.id, 1, 400 FROM customer_order o JOIN product p ON p.sku = 'STK-10'")
        chunks: list[bytes] = []
        resp = await fetch(s, "/export/orders.csv", streaming_callback=chunks.append)
        assert resp.code == 200
        assert resp.headers["Content-Type"].startswith("text/csv")
        # flushed before the end: sent chunked, while the cursor was still reading
        assert resp.headers["Transfer-Encoding"] == "chunked"
        lines = b"".join(chunks).decode().splitlines()
        assert lines[0] == "order_id,created,customer,sku,qty,price_cents"
        assert len(lines) == n + 1
        assert lines[1].startswith(f"{first},") and lines[1].endswith(",bulk0,STK-10,1,400")
        assert pool.stats()["pool_available"] == pool.stats()["pool_size"]  # lease given back


@pytest.mark.gen_test(timeout=60)
async def test_slow_requests_overlap_and_prometheus(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn, max_size=6) as s:
        start = time.monotonic()
        slow = await asyncio.gather(*[fetch(s, "/slow") for _ in range(4)])
        assert all(json.loads(r.body)["slept"] is True for r in slow)
        assert len({json.loads(r.body)["connection_id"] for r in slow}) == 4
        assert time.monotonic() - start < 3.5  # four SLEEP(1) overlap
        stats = (await fetch(s, "/stats")).body.decode()
        assert 'tornpool_pool_size{pool="shop"}' in stats
        assert "# TYPE tornpool_connection_use_seconds histogram" in stats


def test_demo_on_a_taken_port_says_which_and_how_to_pick_another() -> None:
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


def test_demo_with_an_unreachable_server_says_so_in_one_line() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    run = subprocess.run([sys.executable, "-m", "demos.app", "--port", "0", "--dsn",
                          f"mysql://root@127.0.0.1:{dead}/test?connect_timeout=5"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith("tornpool demo: cannot start: (2003,")
    assert "Traceback" not in run.stderr
