"""The shop as one object (pool, admin pool, monitor, load controls) and its
Tornado application."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from tornado import web

from tornpool import Pool

from demos.shop import api, dashboard, pages, schema
from demos.shop.controls import LoadControls
from demos.shop.monitor import PoolMonitor

__all__ = ["Shop", "make_app", "TEMPLATES", "STATIC"]

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(HERE, "templates")
STATIC = os.path.join(HERE, "static")


class Shop:
    """The demo's state: ``pool`` serves the shop, ``admin`` (a second small
    pool on the same server) sends the dashboard's ``KILL``s.  Use ``async
    with Shop(...)`` (or :meth:`start` / :meth:`stop`) on the running loop:
    start creates the tables and starts the monitor."""

    def __init__(self, pool: Pool, admin: Pool, *, interval: float = 0.5,
                 window: float = 10.0) -> None:
        self.pool = pool
        self.admin = admin
        self.monitor = PoolMonitor(pool, interval=interval, window=window)
        self.controls = LoadControls(pool, admin, note=self.monitor.note)
        self.monitor.extra = self.controls.state

    async def start(self) -> Shop:
        """:raises tornpool.MySQLError: the tables could not be created."""
        await schema.create(self.pool)
        self.monitor.start()
        return self

    async def stop(self) -> None:
        await self.controls.stop()
        await self.monitor.stop()

    async def __aenter__(self) -> Shop:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def make_app(shop: Shop, **settings: Any) -> web.Application:
    """The shop's routes (see :mod:`demos.shop.pages` and
    :mod:`demos.shop.api`) and the dashboard."""
    return web.Application(
        [
            (r"/", pages.Home),
            (r"/products", pages.AddProduct),
            (r"/orders", pages.Orders),
            (r"/orders/new", pages.PlaceOrder),
            (r"/orders/([0-9]+)", pages.OrderPage),
            (r"/slow", pages.Slow),
            (r"/stats", pages.Metrics),
            (r"/api/products", api.ProductsApi),
            (r"/api/products/([0-9]+)", api.ProductApi),
            (r"/api/orders", api.OrdersApi),
            (r"/api/orders/([0-9]+)", api.OrderApi),
            (r"/api/pool", api.PoolApi),
            (r"/api/load/(burst|hold|kill)", api.LoadApi),
            (r"/export/orders.csv", api.ExportCsv),
            (r"/dashboard", dashboard.DashboardPage),
            (r"/dashboard/events", dashboard.DashboardEvents),
        ],
        shop=shop,
        template_path=TEMPLATES,
        static_path=STATIC,
        xsrf_cookies=True,
        **settings,
    )
