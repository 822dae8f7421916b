"""Shared set-up for the Momoko facade tests (no tests here).

Momoko's own suite (FSX/momoko ``tests.py``) ran against PostgreSQL and a
kill-able TCP proxy; its scenarios are ported to MariaDB in
``test_momoko_connection.py``, ``test_momoko_pool.py`` and
``test_momoko_volatile.py`` under their original names.  Here:

* :func:`momoko_server` -- a throwaway server for one test module, with the
  user ``momoko`` (whose connections the tests count on the server) and the
  database ``momoko_test``;
* :class:`Route` -- how a test reaches it: directly, where Momoko's
  ``shutter`` (close every pooled connection) becomes a server-side ``KILL``
  of each, or through a :class:`~tornpool.testing.FaultProxy`, where it
  resets every proxied connection (Momoko restarted its proxy);
* :func:`opened_pool` -- a connected facade pool that, when the test is done,
  must have no connection in use ("Some connections were not recycled") and
  leaves none open on the server;
* the tables and procedures of Momoko's ``BaseDataTest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pymysql

import tornpool.momoko as momoko
from tornpool.testing import FaultProxy, MariaDBServer

USER = "momoko"
DATABASE = "momoko_test"
#: Momoko's ``bad_dsn``: nothing listens there (127.0.0.0/8 refuses at once).
BAD_DSN = "dbname=db user=user password=xxpassword host=127.0.0.127 port=11111"
#: Momoko's ``local_bad_dsn``: a unix socket that does not exist.
LOCAL_BAD_DSN = "dbname=db user=user password=xxpassword unix_socket=/nonexistent/mysqld.sock"
#: Momoko's pg_sleep(2), shortened.
SLEEP = 0.5

SCHEMA = [
    "DROP TABLE IF EXISTS unit_test_large_query",
    "DROP TABLE IF EXISTS unit_test_transaction",
    "DROP TABLE IF EXISTS unit_test_int_table",
    "DROP PROCEDURE IF EXISTS unit_test_callproc",
    "DROP PROCEDURE IF EXISTS unit_test_callproc_noparams",
    "CREATE TABLE unit_test_large_query (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), "
    "data LONGTEXT) ENGINE=InnoDB",
    "CREATE TABLE unit_test_transaction (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), "
    "data TEXT) ENGINE=InnoDB",
    "CREATE TABLE unit_test_int_table (id INT) ENGINE=InnoDB",
    "CREATE PROCEDURE unit_test_callproc(IN n INT) SELECT n * n",
    "CREATE PROCEDURE unit_test_callproc_noparams() SELECT 42",
]


def make_tables(server: "MomokoServer") -> None:
    """Momoko's ``clean_db`` + ``prepare_db``, in ``momoko_test``."""
    server.run(*SCHEMA, database=DATABASE)


def libpq_dsn(host: str, port: int, user: str = USER, database: str = DATABASE) -> str:
    """A Momoko-style DSN (an empty password, as Momoko's tests write it)."""
    return f"dbname={database} user={user} password= host={host} port={port}"


class PreparedServer:
    """A throwaway server with a user whose connections the tests count
    (the TorMySQL tests use it too)."""

    def __init__(self, server: MariaDBServer, user: str = USER) -> None:
        self.server = server
        self.user = user

    def admin(self, database: str | None = None) -> Any:
        return pymysql.connect(host="127.0.0.1", port=self.server.port, user="root",
                               database=database, autocommit=True)

    def run(self, *statements: str, database: str | None = None) -> None:
        conn = self.admin(database)
        try:
            with conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
        finally:
            conn.close()

    def query(self, sql: str, args: Any = None, database: str | None = None) -> Any:
        conn = self.admin(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def thread_ids(self) -> list[int]:
        """Server ids of the user's connections."""
        rows = self.query("SELECT id FROM information_schema.processlist WHERE user = %s", (self.user,))
        return [int(r[0]) for r in rows]

    def count(self) -> int:
        """How many connections the user has on the server."""
        return len(self.thread_ids())

    def assert_none_left(self, timeout: float = 5.0) -> None:
        """The user has no connection on the server (within ``timeout``: the
        server drops a closed connection a moment after the client)."""
        deadline = time.monotonic() + timeout
        while self.count() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.count() == 0, "connections of %s left on the server" % self.user

    def kill_all(self) -> int:
        """``KILL`` every connection of the user, and wait until
        the server has let them go; returns how many there were."""
        ids = self.thread_ids()
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                for tid in ids:
                    try:
                        cur.execute("KILL %d" % tid)
                    except pymysql.err.OperationalError:
                        pass  # gone meanwhile
        finally:
            conn.close()
        deadline = time.monotonic() + 5
        while set(ids) & set(self.thread_ids()) and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(ids)


class MomokoServer(PreparedServer):
    """A throwaway server prepared for the Momoko tests."""


@contextlib.contextmanager
def momoko_server() -> Iterator[MomokoServer]:
    """A :class:`MomokoServer` for one test module."""
    with MariaDBServer() as server:
        prepared = MomokoServer(server)
        prepared.run(
            f"CREATE DATABASE {DATABASE}",
            f"CREATE USER '{USER}'@'%' IDENTIFIED BY ''",
            f"GRANT ALL ON *.* TO '{USER}'@'%'",
        )
        yield prepared


async def blocking(fn: Any, *args: Any) -> Any:
    """Run blocking test plumbing (PyMySQL, the server's kill) off the loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class Route:
    """How a test reaches the server: ``direct`` or ``proxy``."""

    def __init__(self, kind: str, server: MomokoServer) -> None:
        self.kind = kind
        self.server = server
        self.proxy: FaultProxy | None = None
        port = server.server.port
        if kind == "proxy":
            self.proxy = FaultProxy("127.0.0.1", port).start()
            port = self.proxy.port
        self.dsn = libpq_dsn("127.0.0.1", port)

    async def shutter(self) -> None:
        """Momoko's ``shutter``: every pooled connection dies under the pool
        (KILLed on the server, or reset by the proxy), and the loop gets a
        moment to see the hang-ups."""
        if self.proxy is not None:
            self.proxy.reset_all()
        else:
            await blocking(self.server.kill_all)
        await asyncio.sleep(0.05)

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()


@contextlib.asynccontextmanager
async def opened_pool(dsn: str, **kwargs: Any) -> AsyncIterator[momoko.Pool]:
    """Momoko's ``build_pool()`` (size 3, ``raise_connect_errors=False`` unless
    given), connected; afterwards no connection may be in use, and the pool
    is closed."""
    kwargs.setdefault("size", 3)
    kwargs.setdefault("raise_connect_errors", False)
    db = momoko.Pool(dsn, **kwargs)
    await db.connect()
    try:
        yield db
        busy = [c for c in db.native.connections() if c["state"] == "in use"]
        assert not busy, "Some connections were not recycled: %r" % busy
    finally:
        if not db.closed:
            db.close()
        await db.wait_closed()


async def wait_count(server: Any, want: int, timeout: float = 5.0) -> int:
    """Poll ``server.count()`` (run off the loop) until it says ``want`` (or
    ``timeout`` passes); the last count."""
    deadline = time.monotonic() + timeout
    while True:
        n = await blocking(server.count)
        if n == want or time.monotonic() >= deadline:
            return int(n)
        await asyncio.sleep(0.02)


def transaction_statements(ucode: bool = False) -> list[Any]:
    """Momoko's ``build_transaction_query``.  Python 2's str/unicode split is
    bytes/str here: the first two statements are bytes, or (``ucode``) str
    with non-ASCII text in them."""
    first: list[Any] = (["SELECT 1, 2, 3, 4 /* \u00fcn\u00efc\u00f6d\u00e9 */;", "SELECT 5, 6, 7, 8 /* \u2603 */;"]
                        if ucode else [b"SELECT 1, 2, 3, 4;", b"SELECT 5, 6, 7, 8;"])
    return [
        *first,
        "SELECT 9, 10, 11, 12;",
        ("SELECT %s+10, %s+10, %s+10, %s+10;", (3, 4, 5, 6)),
        "SELECT 17, 18, 19, 20;",
        ("SELECT %s+20, %s+20, %s+20, %s+20;", (1, 2, 3, 4)),
    ]


def check_transaction_cursors(cursors: list[Any]) -> None:
    """Momoko's ``compare_transaction_cursors``."""
    assert len(cursors) == 6
    assert [c.fetchone() for c in cursors] == [
        (1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20),
        (21, 22, 23, 24)]
