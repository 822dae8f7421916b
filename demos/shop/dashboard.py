"""The live pool dashboard: the page, and its feed of server-sent events.

``GET /dashboard/events`` is an ``text/event-stream``: first a ``hello``
(recent frames and events, so the charts start filled), then a ``frame``
every sampling interval and an ``event`` the moment the pool reports one.
The browser's ``EventSource`` reconnects by itself if the stream drops.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.iostream import StreamClosedError

from demos.shop.base import ShopHandler
from demos.shop.controls import LIMITS
from demos.shop.monitor import Message, QUANTILES

__all__ = ["DashboardPage", "DashboardEvents"]


class DashboardPage(ShopHandler):
    def get(self) -> None:
        self.render("dashboard.html", limits=LIMITS, quantiles=[q for q, _ in QUANTILES],
                    monitor=self.shop.monitor, style="sync handler, live data over SSE")


class DashboardEvents(ShopHandler):
    _queue: asyncio.Queue[Message | None] | None = None

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        monitor = self.shop.monitor
        queue = self._queue = monitor.subscribe()
        try:
            self.write("retry: 1000\n\n")
            self._send("hello", monitor.hello())
            await self.flush()
            while True:
                message = await queue.get()
                if message is None:
                    break
                self._send(*message)
                if queue.empty():
                    await self.flush()
        except StreamClosedError:
            pass  # the browser went away
        finally:
            monitor.unsubscribe(queue)

    def _send(self, kind: str, data: Any) -> None:
        self.write(f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n")

    def on_connection_close(self) -> None:
        if self._queue is not None:
            self.shop.monitor.end(self._queue)
