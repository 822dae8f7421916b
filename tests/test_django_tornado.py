"""Django on Tornado through GreenRequestHandler: 50 concurrent requests
whose ORM query sleeps 0.2 s overlap on max_size=10 connections, no two
concurrent requests share one, and their atomic() blocks stay apart."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornpool import green as tgreen

from greentor_compat.django import pooling


@pytest.fixture
def base_url(django_env: str, io_loop: Any) -> Iterator[str]:
    from demos.django_demo.handlers import make_app

    sock, port = bind_unused_port()
    server = HTTPServer(make_app())
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        io_loop.run_sync(server.close_all_connections)


@pytest.mark.gen_test(timeout=60)
async def test_fifty_sleeping_requests_overlap_on_ten_connections(
        base_url: str, server_connections: Any) -> None:
    client = AsyncHTTPClient(max_clients=60)
    try:
        # warm: Django's first-use work, and the pool's ten connections
        await asyncio.gather(*[client.fetch(base_url + "/api/slow?s=0.05") for _ in range(10)])
        with server_connections as sampler:
            start = time.monotonic()
            replies = await asyncio.gather(*[client.fetch(base_url + "/api/slow?s=0.2", request_timeout=30)
                                             for _ in range(50)])
            elapsed = time.monotonic() - start
    finally:
        client.close()
    answers = [pooling_json(r.body) for r in replies]
    assert all(a["slept"] and a["same_connection"] for a in answers)
    assert elapsed < 2.0, elapsed  # five waves of 0.2 s (about 1.1 s here); serial would be 10 s
    assert sampler.samples > 0 and sampler.peak <= 10, sampler.peak
    assert pooling.pools()["default"].budget.used <= 10
    # no connection served two requests at overlapping times
    by_connection: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for a in answers:
        by_connection[a["connection_id"]].append((a["started"], a["ended"]))
    assert len(by_connection) <= 10
    for spans in by_connection.values():
        spans.sort()
        for (_, end), (start_next, _) in zip(spans, spans[1:]):
            assert start_next >= end
    print(f"50 requests x SLEEP(0.2), max_size=10: {elapsed:.2f} s, peak server connections {sampler.peak}")


def pooling_json(body: bytes) -> Any:
    import json

    return json.loads(body)


@pytest.mark.gen_test(timeout=60)
async def test_atomic_blocks_of_concurrent_requests_do_not_interfere(base_url: str) -> None:
    from demos.django_demo.models import Counter, Note

    before = await tgreen.spawn(
        lambda: Counter.objects.filter(name="notes").values_list("value", flat=True).first() or 0)
    tag = uuid.uuid4().hex[:10]
    client = AsyncHTTPClient(max_clients=30)
    try:
        bodies = [urllib.parse.urlencode({"name": tag, "message": f"{tag}-{i}", "fail": "1" if i % 2 else ""})
                  for i in range(20)]
        replies = await asyncio.gather(*[client.fetch(base_url + "/api/notes", method="POST", body=b,
                                                      raise_error=False) for b in bodies])
    finally:
        client.close()
    assert sorted(r.code for r in replies) == [200] * 10 + [409] * 10
    for reply in replies:
        if reply.code == 200:
            body = pooling_json(reply.body)
            assert body["on_commit"] == [body["id"]]  # on_commit ran, after the commit

    def outcome() -> tuple[list[str], int]:
        from django.db import connection

        kept = sorted(Note.objects.filter(name=tag).values_list("message", flat=True))
        value = Counter.objects.get(name="notes").value
        connection.close()
        return kept, value

    kept, after = await tgreen.spawn(outcome)
    assert kept == sorted(f"{tag}-{i}" for i in range(0, 20, 2))
    assert after - before == 10  # select_for_update: every committed bump counted, none of the failed


@pytest.mark.gen_test(timeout=30)
async def test_on_finish_gives_every_connection_back(base_url: str) -> None:
    client = AsyncHTTPClient()
    try:
        await asyncio.gather(*[client.fetch(base_url + path) for path in ["/", "/api/notes", "/api/slow?s=0"] * 4])
        ping = await client.fetch(base_url + "/ping")
        assert ping.body == b"pong"
    finally:
        client.close()
    faces = pooling.pools()["default"].faces()
    face = faces[asyncio.get_running_loop()]
    stats = face.stats()
    assert stats["pool_size"] >= 1 and stats["pool_available"] == stats["pool_size"], stats
