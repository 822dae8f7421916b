"""Shared fixtures: a real MariaDB (tornpool.testing) and a warning-free io_loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tornado.platform.asyncio import AsyncIOMainLoop

pytest_plugins = ["tornpool.testing"]


@pytest.fixture
def io_loop() -> Iterator[AsyncIOMainLoop]:
    """pytest-tornado's loop without the deprecated ``IOLoop.make_current``."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    io_loop = AsyncIOMainLoop()
    try:
        yield io_loop
    finally:
        io_loop.close(all_fds=True)
        asyncio.set_event_loop(None)


@pytest.fixture
def dsn(mariadb_dsn: str) -> str:
    """DSN of the session's shared server (never kill it)."""
    return mariadb_dsn
