"""The shop's HTML pages and forms.

Both handler styles are here on purpose: the home page and the product form
are ``async def`` + ``await``; the order form and the order pages are
``@gen.coroutine`` + ``yield`` (tornpool's awaitables are yieldable too).
Each page's footer says which style served it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tornado import gen

from demos.shop import store
from demos.shop.base import ShopHandler

__all__ = ["Home", "AddProduct", "PlaceOrder", "Orders", "OrderPage", "Slow", "Metrics"]

ASYNC = "async def + await"
CLASSIC = "@gen.coroutine + yield"


class Home(ShopHandler):
    """``/``: products, the two forms, the latest orders."""

    async def get(self) -> None:
        await self.render_home(notice=self.get_argument("added", None))

    async def render_home(self, *, error: str | None = None, notice: str | None = None,
                          form: dict[str, str] | None = None, status: int = 200,
                          style: str = ASYNC) -> None:
        products = await store.list_products(self.pool)
        orders = await store.recent_orders(self.pool, 5)
        version = (await self.pool.execute("SELECT VERSION()")).fetchone()[0]
        self.set_status(status)
        self.render("shop.html", products=products, orders=orders, version=version,
                    error=error, notice=notice, form=form or {}, style=style)


class AddProduct(Home):
    """``POST /products``: the "add a product" form."""

    async def post(self) -> None:
        form = {k: self.get_body_argument(k, "") for k in ("sku", "name", "price", "stock")}
        try:
            product = await store.add_product(self.pool, form["sku"], form["name"],
                                              form["price"], form["stock"])
        except store.ShopError as exc:
            await self.render_home(error=str(exc), form=form, status=exc.status)
            return
        self.redirect("/?added=" + product["sku"])


class PlaceOrder(Home):
    """``POST /orders``: the order form, one transaction."""

    @gen.coroutine
    def post(self) -> Generator[Any, Any, None]:
        form = {k: self.get_body_argument(k, "") for k in ("customer", "product_id", "qty")}
        try:
            order = yield store.place_order(
                self.pool, form["customer"], [{"product_id": form["product_id"], "qty": form["qty"]}])
        except store.ShopError as exc:
            yield self.render_home(error=str(exc), form=form, status=exc.status, style=CLASSIC)
            return
        self.redirect(f"/orders/{order['id']}?placed=1")


class Orders(ShopHandler):
    """``/orders``: the latest orders and the totals."""

    @gen.coroutine
    def get(self) -> Generator[Any, Any, None]:
        orders = yield store.recent_orders(self.pool, 50)
        cur = yield self.pool.execute(
            "SELECT COUNT(*), COALESCE(SUM(total_cents), 0) FROM customer_order")
        count, total = cur.fetchone()
        self.render("orders.html", orders=orders, count=count, total=int(total), style=CLASSIC)


class OrderPage(ShopHandler):
    """``/orders/<id>``: one order and its items."""

    @gen.coroutine
    def get(self, order_id: str) -> Generator[Any, Any, None]:
        try:
            order = yield store.get_order(self.pool, order_id)
        except store.NotFound as exc:
            self.set_status(404)
            self.render("notfound.html", message=str(exc), style=CLASSIC)
            return
        self.render("order.html", order=order, placed=bool(self.get_argument("placed", "")),
                    style=CLASSIC)


class Slow(ShopHandler):
    """``/slow``: one ``SELECT SLEEP(1)``; open several at once, they overlap."""

    async def get(self) -> None:
        slept, connection_id = (await self.pool.execute("SELECT SLEEP(1), CONNECTION_ID()")).fetchone()
        self.write({"slept": slept == 0, "connection_id": connection_id})


class Metrics(ShopHandler):
    """``/stats``: the pool's statistics and histograms, Prometheus text format."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.write(self.pool.prometheus())
