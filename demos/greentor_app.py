"""greentor-style Tornado handlers: blocking PyMySQL code that never blocks the loop.

    python -m demos.greentor_app [--dsn mysql://...] [--port 8889]

Without ``--dsn`` (or ``TORNPOOL_TEST_DSN``) it starts a throwaway MariaDB of
its own and removes it on exit.  The handlers are written as for greentor:
``@green.green`` runs each request in a green task, where PyMySQL -- patched
by ``mysql.patch_pymysql()`` -- waits for the server without blocking the
loop.  Only the imports say ``greentor_compat`` instead of ``greentor``.

Pages:

* ``/``       -- a connection of its own per request (``pymysql.connect``);
* ``/pool``   -- a connection from ``mysql.ConnectionPool``;
* ``/sign``   -- POST ``name`` and ``message``: one transaction;
* ``/slow``   -- ``SELECT SLEEP(1)`` through the pool: open several at once, they overlap;
* ``/ping``   -- no database at all: it answers while the others wait.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import signal
import sys
from typing import Any

import pymysql
from tornado import web

from demos.app import database, port_taken
from greentor_compat import green, mysql
from tornpool import parse_dsn

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(60) NOT NULL,
    message VARCHAR(500) NOT NULL
) CHARACTER SET utf8mb4
"""

LATEST = "SELECT name, message FROM notes ORDER BY id DESC LIMIT 20"


def page(how: str, version: str, rows: Any) -> str:
    items = "".join("<li><b>%s</b>: %s</li>" % (html.escape(n), html.escape(m)) for n, m in rows)
    return ("<!doctype html><meta charset=utf-8><title>greentor_compat demo</title>"
            "<h1>greentor_compat demo</h1><p>%s, on %s</p><ul>%s</ul>"
            '<form method=post action=/sign><input name=name placeholder=name required> '
            "<input name=message placeholder=message required><button>Sign</button></form>"
            '<p><a href="/">own connection</a> · <a href="/pool">pool</a> · <a href="/slow">slow</a></p>'
            % (html.escape(how), html.escape(version), items))


class Base(web.RequestHandler):
    @property
    def params(self) -> dict[str, Any]:
        return self.application.settings["mysql_params"]  # type: ignore[no-any-return]

    @property
    def pool(self) -> mysql.ConnectionPool:
        return self.application.settings["pool"]  # type: ignore[no-any-return]


class OwnConnection(Base):
    @green.green
    def get(self) -> None:
        conn = pymysql.connect(**self.params)
        try:
            cursor = conn.cursor()
            cursor.execute(LATEST)
            rows = cursor.fetchall()
            cursor.close()
        finally:
            conn.close()
        self.finish(page("a connection per request", conn.get_server_info(), rows))


class Pooled(Base):
    @green.green
    def get(self) -> None:
        conn = self.pool.get_conn()
        try:
            cursor = conn.cursor()
            cursor.execute(LATEST)
            rows = cursor.fetchall()
            cursor.close()
            version = conn.get_server_info()
        finally:
            self.pool.release(conn)
        self.finish(page("a pooled connection", version, rows))


class Sign(Base):
    @green.green
    def post(self) -> None:
        name = self.get_body_argument("name")[:60]
        message = self.get_body_argument("message")[:500]
        with self.pool.connection() as conn:
            conn.begin()
            with conn.cursor() as cursor:
                cursor.execute("INSERT INTO notes (name, message) VALUES (%s, %s)", (name, message))
            conn.commit()
        self.redirect("/pool")


class Slow(Base):
    @green.green
    def get(self) -> None:
        with self.pool.connection() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT SLEEP(1), CONNECTION_ID()")
            slept, connection_id = cursor.fetchone()
        self.finish({"slept": slept == 0, "connection_id": connection_id})


class Ping(web.RequestHandler):
    def get(self) -> None:
        self.finish("pong")


def make_app(mysql_params: dict[str, Any], pool: mysql.ConnectionPool) -> web.Application:
    """The demo's application (``patch_pymysql()`` must be active for ``/``)."""
    return web.Application(
        [(r"/", OwnConnection), (r"/pool", Pooled), (r"/sign", Sign), (r"/slow", Slow), (r"/ping", Ping)],
        mysql_params=mysql_params,
        pool=pool,
    )


def create_schema(pool: mysql.ConnectionPool) -> None:
    """Create the demo's table (blocking style: run it in a green task)."""
    with pool.connection() as conn, conn.cursor() as cursor:
        cursor.execute(SCHEMA)


async def serve(mysql_params: dict[str, Any], port: int, address: str) -> None:
    pool = mysql.ConnectionPool(max_size=10, mysql_params=mysql_params)
    await green.spawn(create_schema, pool)
    server = make_app(mysql_params, pool).listen(port, address)
    print(f"greentor_compat demo: http://{address}:{port}/  (Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await green.spawn(pool.quit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    parser.add_argument("--port", type=int, default=8889)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    why = port_taken(args.address, args.port)
    if why is not None:
        sys.exit(f"greentor_compat demo: cannot listen on {args.address}:{args.port} ({why}); "
                 f"pick another port with --port")
    mysql.patch_pymysql()
    with database(args.dsn) as dsn:
        params = parse_dsn(dsn)
        params.setdefault("autocommit", True)
        asyncio.run(serve(params, args.port, args.address))


if __name__ == "__main__":
    main()
