"""A TorMySQL application on tornpool.tormysql: only the import and the
connection arguments changed.

    python -m demos.tormysql_app [--dsn mysql://root@127.0.0.1:3306/test] [--port 8890]

Without ``--dsn`` it starts a throwaway MariaDB (``tornpool.testing``) and
removes it on exit.  The handlers are written the way TorMySQL's README
writes them -- ``@tornado.gen.coroutine`` + ``yield`` on a
``helpers.ConnectionPool``, ``with (yield pool.Connection()) as conn``,
``tx = yield pool.begin()`` -- plus ``async def`` ones with ``async with``
and a streaming ``SSDictCursor``.

Pages: ``/`` (links), ``/query``, ``/async``, ``/connection``,
``/transaction`` (POST ``data``), ``/rows``, ``/stream``.
"""

from __future__ import annotations

import argparse
import html
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import tornado.gen
import tornado.ioloop
import tornado.web

import tornpool.tormysql as tormysql  # was: import tormysql

SCHEMA = ("CREATE TABLE IF NOT EXISTS tormysql_demo (id INT AUTO_INCREMENT PRIMARY KEY, "
          "data VARCHAR(100)) CHARACTER SET utf8mb4")


def make_pool(**connect_args: Any) -> tormysql.helpers.ConnectionPool:
    """The pool as TorMySQL's README builds it."""
    connect_args.setdefault("charset", "utf8")
    return tormysql.helpers.ConnectionPool(
        max_connections=10,
        idle_seconds=7200,
        wait_connection_timeout=30,
        **connect_args,
    )


class Base(tornado.web.RequestHandler):
    @property
    def pool(self) -> tormysql.helpers.ConnectionPool:
        return self.application.settings["pool"]  # type: ignore[no-any-return]


class Overview(Base):
    def get(self) -> None:
        links = ["query", "async", "connection", "rows", "stream"]
        self.write("<ul>%s</ul>" % "".join('<li><a href="/%s">%s</a></li>' % (p, p) for p in links))


class Query(Base):
    @tornado.gen.coroutine
    def get(self) -> Iterator[Any]:
        sleep = float(self.get_argument("sleep", "0"))
        cursor = yield self.pool.execute("SELECT SLEEP(%s), CONNECTION_ID()", (sleep,))
        slept, connection_id = cursor.fetchone()
        self.write({"style": "gen", "slept": slept == 0, "connection_id": connection_id})


class AsyncQuery(Base):
    async def get(self) -> None:
        sleep = float(self.get_argument("sleep", "0"))
        async with await self.pool.Connection() as conn:
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT SLEEP(%s), CONNECTION_ID()", (sleep,))
                slept, connection_id = cursor.fetchone()
        self.write({"style": "async", "slept": slept == 0, "connection_id": connection_id})


class ConnectionPage(Base):
    @tornado.gen.coroutine
    def get(self) -> Iterator[Any]:
        with (yield self.pool.Connection()) as conn:
            with conn.cursor() as cursor:
                yield cursor.execute("SELECT CONNECTION_ID()")
                first = cursor.fetchone()[0]
            with conn.cursor() as cursor:
                yield cursor.execute("SELECT CONNECTION_ID()")
                second = cursor.fetchone()[0]
        self.write({"same_connection": first == second})


class Transaction(Base):
    @tornado.gen.coroutine
    def post(self) -> Iterator[Any]:
        data = self.get_body_argument("data")[:100]
        tx = yield self.pool.begin()
        try:
            yield tx.execute("INSERT INTO tormysql_demo (data) VALUES (%s)", data)
            if data == "fail":
                raise ValueError("asked to fail")
        except Exception:
            yield tx.rollback()
            self.set_status(400)
            self.write("rolled back")
        else:
            yield tx.commit()
            self.write("committed")


class Rows(Base):
    @tornado.gen.coroutine
    def get(self) -> Iterator[Any]:
        cursor = yield self.pool.execute("SELECT id, data FROM tormysql_demo ORDER BY id DESC LIMIT 20",
                                         cursor_cls=tormysql.DictCursor)
        self.write("".join("<p>%d: %s</p>" % (r["id"], html.escape(r["data"])) for r in cursor.fetchall()))


class Stream(Base):
    async def get(self) -> None:
        count = int(self.get_argument("count", "1000"))
        rows = 0
        async with await self.pool.Connection() as conn:
            async with conn.cursor(tormysql.SSDictCursor) as cursor:
                await cursor.execute("SELECT seq FROM seq_1_to_%d" % count)
                async for row in cursor:
                    rows += 1
                    last = row["seq"]
        self.write({"rows": rows, "last": last if rows else None})


def make_app(pool: tormysql.helpers.ConnectionPool) -> tornado.web.Application:
    return tornado.web.Application([
        (r"/", Overview),
        (r"/query", Query),
        (r"/async", AsyncQuery),
        (r"/connection", ConnectionPage),
        (r"/transaction", Transaction),
        (r"/rows", Rows),
        (r"/stream", Stream),
    ], pool=pool)


def run(dsn: str, port: int, address: str) -> None:
    pool = make_pool(**_args(dsn))
    ioloop = tornado.ioloop.IOLoop.current()
    ioloop.run_sync(lambda: pool.execute(SCHEMA))
    app = make_app(pool)
    server = app.listen(port, address)
    for sig in (signal.SIGINT, signal.SIGTERM):
        ioloop.asyncio_loop.add_signal_handler(sig, ioloop.stop)  # type: ignore[attr-defined]
    print(f"tormysql demo: http://{address}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        ioloop.start()
    finally:
        server.stop()
        ioloop.run_sync(lambda: pool.close())


def _args(dsn: str) -> dict[str, Any]:
    """TorMySQL takes PyMySQL's keyword arguments: turn the DSN into them."""
    from tornpool import parse_dsn

    kwargs = parse_dsn(dsn)
    if "database" in kwargs:
        kwargs["db"] = kwargs.pop("database")
    if "password" in kwargs:
        kwargs["passwd"] = kwargs.pop("password")
    return kwargs


def main() -> None:
    from demos.app import database, port_taken

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    parser.add_argument("--port", type=int, default=8890)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    why = port_taken(args.address, args.port)
    if why is not None:
        sys.exit(f"tormysql demo: cannot listen on {args.address}:{args.port} ({why}); "
                 f"pick another port with --port")
    with database(args.dsn) as dsn:
        run(dsn, args.port, args.address)


if __name__ == "__main__":
    main()
