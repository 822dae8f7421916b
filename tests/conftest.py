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


# -- Django (greentor_compat.django) ----------------------------------------------
#
# Django's settings are process-wide: the first test that asks for
# ``django_db`` configures them, on a database of their own on the session's
# server, with three aliases: "default" (pool, max_size 10), "small" (pool,
# max_size 3) and "unpooled" ("pool": False).

DJANGO_DB = "tornpool_django"


@pytest.fixture(scope="session")
def django_db(mariadb_dsn: str) -> str:
    """Configure Django for the demo app's models on ``tornpool_django``;
    returns that database's name."""
    import pymysql

    from demos.django_demo.config import configure, create_tables, database_settings
    from tornpool import parse_dsn

    kw = parse_dsn(mariadb_dsn)
    kw.pop("database", None)
    admin = pymysql.connect(**kw, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DJANGO_DB}")
            cur.execute(f"CREATE DATABASE {DJANGO_DB} CHARACTER SET utf8mb4")
    finally:
        admin.close()
    configure({
        "default": database_settings(mariadb_dsn, name=DJANGO_DB, pool={"max_size": 10, "timeout": 10}),
        "small": database_settings(mariadb_dsn, name=DJANGO_DB, pool={"max_size": 3, "timeout": 10}),
        "unpooled": database_settings(mariadb_dsn, name=DJANGO_DB, pool=False),
    })
    create_tables()  # from this thread: through the pool's blocking face
    return DJANGO_DB


@pytest.fixture
def django_env(django_db: str, io_loop: AsyncIOMainLoop) -> Iterator[str]:
    """Django configured; after the test every pool is closed on the test's loop."""
    yield django_db
    from greentor_compat.django import pooling
    from greentor_compat.green import spawn

    io_loop.run_sync(lambda: spawn(pooling.close_pools))


class ServerConnections:
    """Samples, from a thread, how many server connections use ``db`` (the
    sampler's own connection uses another database); :attr:`peak` is the
    highest count seen while it ran, less :attr:`baseline`, the count when
    it started (connections earlier tests are still closing)."""

    def __init__(self, dsn: str, db: str, interval: float = 0.01) -> None:
        import threading

        from tornpool import parse_dsn

        self.kw = parse_dsn(dsn)
        self.db = db
        self.interval = interval
        self.peak = 0
        self.baseline = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self, conn: object = None) -> int:
        import pymysql

        own = conn or pymysql.connect(**self.kw)
        try:
            with own.cursor() as cur:  # type: ignore[attr-defined]
                cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s", (self.db,))
                return int(cur.fetchone()[0])
        finally:
            if conn is None:
                own.close()  # type: ignore[attr-defined]

    def _run(self) -> None:
        import pymysql

        conn = pymysql.connect(**self.kw)
        try:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.count(conn) - self.baseline)
                self.samples += 1
                self._stop.wait(self.interval)
        finally:
            conn.close()

    def __enter__(self) -> ServerConnections:
        self.baseline = self.count()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def server_connections(mariadb_dsn: str, django_db: str) -> ServerConnections:
    """A :class:`ServerConnections` sampler for the Django tests' database
    (start it with ``with``)."""
    return ServerConnections(mariadb_dsn, django_db)
