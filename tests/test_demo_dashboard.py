"""The dashboard's data without a browser: the event stream, frames during
and after a burst, kills through the admin pool, the controls' bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from test_demo_util import Served, fresh_database, serve_shop


@pytest.fixture
def shop_dsn(mariadb_dsn: str) -> Iterator[str]:
    with fresh_database(mariadb_dsn) as dsn:
        yield dsn


async def post(s: Served, action: str, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await s.client.fetch(f"{s.base}/api/load/{action}", method="POST", raise_error=False,
                                headers={"Content-Type": "application/json"}, body=json.dumps(body))
    return resp.code, json.loads(resp.body)


async def frame(s: Served) -> dict[str, Any]:
    resp = await s.client.fetch(s.base + "/api/pool")
    return json.loads(resp.body)["frame"]  # type: ignore[no-any-return]


async def until(s: Served, check: Callable[[dict[str, Any]], bool], timeout: float = 10.0,
                seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Poll frames until ``check(frame)``; every frame goes into ``seen``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        f = await frame(s)
        if seen is not None:
            seen.append(f)
        if check(f):
            return f
        assert asyncio.get_running_loop().time() < deadline, f"no frame matched; last: {f}"
        await asyncio.sleep(0.05)


class SSE:
    """Reads /dashboard/events, keeping every message as ``(event, data)``."""

    def __init__(self, s: Served) -> None:
        self.messages: list[tuple[str, Any]] = []
        self._buf = b""
        self.done = asyncio.ensure_future(s.client.fetch(
            s.base + "/dashboard/events", streaming_callback=self._feed, request_timeout=120,
            raise_error=False))

    def _feed(self, chunk: bytes) -> None:
        self._buf += chunk
        while b"\n\n" in self._buf:
            block, self._buf = self._buf.split(b"\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.decode().splitlines() if ": " in line)
            if "event" in fields:
                self.messages.append((fields["event"], json.loads(fields["data"])))

    def mark(self) -> int:
        """Where the messages received so far end."""
        return len(self.messages)

    async def next(self, event: str, match: Callable[[Any], bool] = lambda d: True, *,
                   since: int = 0, timeout: float = 10.0) -> Any:
        """The first ``event`` message from index ``since`` on that matches."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for kind, data in self.messages[since:]:
                if kind == event and match(data):
                    return data
            assert asyncio.get_running_loop().time() < deadline, f"no {event} matched"
            await asyncio.sleep(0.02)


@pytest.mark.gen_test(timeout=60)
async def test_burst_fills_the_pool_queues_requests_and_returns_to_idle(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn, size=2, max_size=6) as s:
        idle = await until(s, lambda f: f["open"] == 2)
        assert idle["in_use"] == 0 and idle["wait_ms"]["p50"] is None  # nothing in the window
        code, body = await post(s, "burst", {"requests": 240, "concurrency": 30, "sleep_ms": 20})
        assert code == 202 and body == {"started": "240 requests from 30 coroutines, 20 ms each"}
        seen: list[dict[str, Any]] = []
        busy = await until(s, lambda f: f["in_use"] == 6 and f["waiting"] > 0, seen=seen)
        assert busy["open"] == 6 and busy["activity"]["bursts"] == 1
        done = await until(s, lambda f: f["activity"]["bursts"] == 0 and f["in_use"] == 0
                           and f["waiting"] == 0, seen=seen)
        assert done["activity"]["burst_done"] == 240 and done["activity"]["failed"] == {}
        assert done["requests"] - idle["requests"] >= 240
        assert done["wait_ms"]["p95"] >= 10  # 30 coroutines on 6 connections queued
        assert done["use_ms"]["p50"] >= 10  # each statement slept 20 ms
        assert max(f["rate"] for f in seen) > 0
        assert done["connects"] == 6 and done["errors"] == {}


@pytest.mark.gen_test(timeout=60)
async def test_event_stream_shows_a_killed_connection_and_its_replacement(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn, size=2, max_size=4) as s:
        sse = SSE(s)
        hello = await sse.next("hello")
        assert hello["frames"] and hello["frames"][-1]["open"] == 2
        assert [e["kind"] for e in hello["events"]] == []  # both connects were before the monitor
        await sse.next("frame")

        code, body = await post(s, "hold", {"count": 1, "seconds": 30})
        assert code == 202
        held = await sse.next("frame", lambda f: f["in_use"] == 1)
        busy_id = next(c["id"] for c in held["connections"] if c["state"] == "in use")
        start = sse.mark()
        code, body = await post(s, "kill", {"state": "in use"})
        assert (code, body) == (200, {"killed": busy_id, "state": "in use"})

        # The pool may notice before the admin's KILL returns: any order.
        kill = await sse.next("event", lambda e: e["kind"] == "kill", since=start)
        assert kill["connection_id"] == busy_id and kill["source"] == "demo"
        lost = await sse.next("event", lambda e: e["kind"] == "lost", since=start)
        assert lost["connection_id"] == busy_id and lost["source"] == "pool"
        error = await sse.next("event", lambda e: e["kind"] == "error", since=start)
        assert error["detail"].startswith("ConnectionLost")
        new = await sse.next("event", lambda e: e["kind"] == "connect", since=start)
        assert new["connection_id"] != busy_id
        after = await sse.next("frame", lambda f: f["open"] == 2 and f["errors"], since=start)
        ids = {c["id"] for c in after["connections"]}
        assert busy_id not in ids and new["connection_id"] in ids
        assert after["errors"] == {"ConnectionLost": 1} and after["errors_total"] == 1
        assert after["connects"] == 3 and after["closes"] == 1

        start = sse.mark()
        code, body = await post(s, "kill", {"state": "idle"})
        assert code == 200
        idle_lost = await sse.next("event", lambda e: e["kind"] == "lost", since=start)
        assert idle_lost["connection_id"] == body["killed"]
        await sse.next("event", lambda e: e["kind"] == "connect", since=start)
        await sse.next("frame", lambda f: f["open"] == 2 and f["closes"] == 2, since=start)
        assert s.shop.pool.errors() == {"ConnectionLost": 1}  # nobody was using that one
        await s.shop.monitor.stop()  # ends every stream with a complete response
        assert (await sse.done).code == 200


@pytest.mark.gen_test(timeout=60)
async def test_controls_refuse_bad_input(shop_dsn: str) -> None:
    async with serve_shop(shop_dsn, size=1, max_size=2) as s:
        assert await post(s, "burst", {"requests": 0}) == \
            (400, {"error": "requests: a number from 1 to 5000 is required"})
        assert await post(s, "burst", {"requests": "many"}) == \
            (400, {"error": "requests: a number from 1 to 5000 is required"})
        assert await post(s, "hold", {"count": 1, "seconds": 1000}) == \
            (400, {"error": "seconds: a number from 0.1 to 120.0 is required"})
        assert await post(s, "burst", {"rounds": 3}) == \
            (400, {"error": "unknown field 'rounds'; expected requests, concurrency, sleep_ms"})
        assert await post(s, "kill", {"state": "closing"}) == \
            (400, {"error": 'state: "in use" or "idle"'})
        assert await post(s, "kill", {"state": "in use"}) == (409, {"error": "no connection is in use"})
        assert s.shop.controls.kills == 0 and (await frame(s))["activity"]["bursts"] == 0
