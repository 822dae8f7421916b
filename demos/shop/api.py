"""The shop's JSON API, the streaming CSV export, and the load controls.

============================  ======================================================
``GET  /api/products``        every product
``POST /api/products``        ``{sku, name, price, stock}`` -> 201 ``{"product"}``
``GET  /api/products/<id>``   one product (404 if unknown)
``GET  /api/orders``          the latest orders
``POST /api/orders``          ``{customer, items: [{product_id, qty}]}`` -> 201
                              ``{"order"}``; 409 when out of stock (nothing changed)
``GET  /api/orders/<id>``     one order with its items
``GET  /export/orders.csv``   every order item as CSV, streamed while it is read
``GET  /api/pool``            the dashboard's latest frame and recent events
``POST /api/load/burst``      ``{requests, concurrency, sleep_ms}``
``POST /api/load/hold``       ``{count, seconds}``
``POST /api/load/kill``       ``{state: "in use" | "idle"}``
============================  ======================================================

Errors are ``{"error": message}`` with 400 (bad input), 404 or 409.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator
from typing import Any

from tornado import gen

from demos.shop import store
from demos.shop.base import ApiHandler, ShopHandler

__all__ = ["ProductsApi", "ProductApi", "OrdersApi", "OrderApi", "ExportCsv", "PoolApi", "LoadApi"]

#: Rows written between two flushes of the export.
EXPORT_CHUNK = 500


class ProductsApi(ApiHandler):
    @gen.coroutine
    def get(self) -> Generator[Any, Any, None]:
        products = yield store.list_products(self.pool)
        self.send_json({"products": products})

    async def post(self) -> None:
        body = self.json_body()
        product = await store.add_product(self.pool, body.get("sku"), body.get("name"),
                                          body.get("price"), body.get("stock"))
        self.send_json({"product": product}, 201)


class ProductApi(ApiHandler):
    async def get(self, product_id: str) -> None:
        self.send_json({"product": await store.get_product(self.pool, product_id)})


class OrdersApi(ApiHandler):
    @gen.coroutine
    def get(self) -> Generator[Any, Any, None]:
        orders = yield store.recent_orders(self.pool, self.get_argument("limit", "20"))
        self.send_json({"orders": orders})

    async def post(self) -> None:
        body = self.json_body()
        order = await store.place_order(self.pool, body.get("customer"), body.get("items"))
        self.send_json({"order": order}, 201)


class OrderApi(ApiHandler):
    @gen.coroutine
    def get(self, order_id: str) -> Generator[Any, Any, None]:
        order = yield store.get_order(self.pool, order_id)
        self.send_json({"order": order})


class ExportCsv(ShopHandler):
    """Every order item, streamed: rows go out in chunks while the server
    still sends the rest, so memory stays flat however large the export."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", 'attachment; filename="orders.csv"')
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow(store.EXPORT_COLUMNS)
        rows = 0
        async for row in store.export_rows(self.pool):
            out.writerow(row)
            rows += 1
            if rows % EXPORT_CHUNK == 0:
                self.write(buf.getvalue())
                buf.seek(0)
                buf.truncate()
                await self.flush()
        self.write(buf.getvalue())


class PoolApi(ApiHandler):
    """The dashboard's data as JSON, for scripts: the latest frame and the
    recent events."""

    def get(self) -> None:
        monitor = self.shop.monitor
        frame = monitor.frames[-1] if monitor.frames else monitor.sample()
        self.send_json({"frame": frame, "events": list(monitor.events)[-50:]})


class LoadApi(ApiHandler):
    """``POST /api/load/(burst|hold|kill)``: the dashboard's buttons."""

    async def post(self, action: str) -> None:
        body = self.json_body()
        controls = self.shop.controls
        if action == "burst":
            result = controls.burst(**_pick(body, "requests", "concurrency", "sleep_ms"))
        elif action == "hold":
            result = controls.hold(**_pick(body, "count", "seconds"))
        else:
            result = await controls.kill(**_pick(body, "state"))
        self.send_json(result, 202 if action != "kill" else 200)


def _pick(body: dict[str, Any], *names: str) -> dict[str, Any]:
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise store.InvalidInput(f"unknown field {unknown[0]!r}; expected {', '.join(names)}")
    return {k: body[k] for k in names if k in body}
