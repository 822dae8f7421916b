"""A Momoko application on tornpool.momoko: only the import and the DSN changed.

    python -m demos.momoko_app [--dsn "dbname=test user=root password= host=127.0.0.1 port=3306"]
                               [--port 8889]

Without ``--dsn`` it starts a throwaway MariaDB (``tornpool.testing``) and
removes it on exit.  The handlers are written as Momoko's own example
application writes them (``@gen.coroutine`` + ``yield``), plus ``async def``
ones, and ``main()`` connects the pool before the IOLoop runs, Momoko's way.

Pages: ``/`` (links), ``/query``, ``/async``, ``/mogrify``, ``/transaction``,
``/multi_query``, ``/connection``, ``/json``, ``/sign`` (POST ``name``,
``message``), ``/guestbook``.
"""

from __future__ import annotations

import argparse
import html
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.web
from tornado import gen

import tornpool.momoko as momoko  # was: import momoko

SCHEMA = ("CREATE TABLE IF NOT EXISTS momoko_guestbook (id INT AUTO_INCREMENT PRIMARY KEY, "
          "name VARCHAR(60) NOT NULL, message VARCHAR(500) NOT NULL) CHARACTER SET utf8mb4")


class BaseHandler(tornado.web.RequestHandler):
    @property
    def db(self) -> momoko.Pool:
        return self.application.db  # type: ignore[attr-defined, no-any-return]


class OverviewHandler(BaseHandler):
    def get(self) -> None:
        links = ["query", "async", "mogrify", "transaction", "multi_query", "connection", "json",
                 "guestbook"]
        self.write("<ul>%s</ul>" % "".join('<li><a href="/%s">%s</a></li>' % (p, p) for p in links))


class SingleQueryHandler(BaseHandler):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        sleep = float(self.get_argument("sleep", "0"))
        cursor = yield self.db.execute("SELECT SLEEP(%s), CONNECTION_ID(), %s", (sleep, "gen"))
        slept, connection_id, style = cursor.fetchone()
        self.write({"style": style, "slept": slept == 0, "connection_id": connection_id})


class AsyncQueryHandler(BaseHandler):
    async def get(self) -> None:
        sleep = float(self.get_argument("sleep", "0"))
        connection = await self.db.getconn()
        with self.db.manage(connection):
            cursor = await connection.execute("SELECT SLEEP(%s), CONNECTION_ID()", (sleep,))
            slept, connection_id = cursor.fetchone()
            cursor = await connection.execute("SELECT CONNECTION_ID()")
            same = cursor.fetchone()[0] == connection_id
        self.write({"style": "async", "slept": slept == 0, "connection_id": connection_id,
                    "same_connection": same})


class MogrifyHandler(BaseHandler):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        sql = yield self.db.mogrify("SELECT %s, %s;", (1, "it's"))
        self.write("SQL: %s" % html.escape(sql.decode()))


class TransactionHandler(BaseHandler):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        cursors = yield self.db.transaction((
            "SELECT 1, 12, 22, 11;",
            "SELECT 55, 22, 78, 13;",
            ("SELECT 49, %s, 23, 11;", ("STR",)),
        ))
        for i, cursor in enumerate(cursors):
            self.write("Query %s results: %s<br>" % (i, html.escape(str(cursor.fetchall()))))


class MultiQueryHandler(BaseHandler):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        cursor1, sql2, cursor3 = yield [
            self.db.execute("SELECT 1;"),
            self.db.mogrify("SELECT 2;"),
            self.db.execute("SELECT %s;", (3 * 1,)),
        ]
        self.write("Query 1 results: %s<br>" % cursor1.fetchall())
        self.write("Query 2 results: %s<br>" % html.escape(sql2.decode()))
        self.write("Query 3 results: %s" % cursor3.fetchall())


class ConnectionQueryHandler(BaseHandler):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        connection = yield self.db.getconn()
        with self.db.manage(connection):
            for i in range(3):
                cursor = yield connection.execute("SELECT %s, CONNECTION_ID();", (i + 1,))
                self.write("Query %d results: %s<br>\n" % (i + 1, cursor.fetchall()))


class JsonQueryHandler(BaseHandler):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        cursor = yield self.db.execute("SELECT JSON_OBJECT('a', 'b', 'c', 'd');")
        self.write("Query results: %s" % html.escape(str(cursor.fetchall())))


class SignHandler(BaseHandler):
    async def post(self) -> None:
        name = self.get_body_argument("name")[:60]
        message = self.get_body_argument("message")[:500]
        await self.db.transaction([
            ("INSERT INTO momoko_guestbook (name, message) VALUES (%s, %s)", (name, message)),
        ])
        self.redirect("/guestbook")


class GuestbookHandler(BaseHandler):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        cursor = yield self.db.execute(
            "SELECT name, message FROM momoko_guestbook ORDER BY id DESC LIMIT 20",
            cursor_factory=momoko.RealDictCursor)
        self.write("".join("<p><b>%s</b>: %s</p>" % (html.escape(r["name"]), html.escape(r["message"]))
                           for r in cursor.fetchall()))


def make_app() -> tornado.web.Application:
    return tornado.web.Application([
        (r"/", OverviewHandler),
        (r"/query", SingleQueryHandler),
        (r"/async", AsyncQueryHandler),
        (r"/mogrify", MogrifyHandler),
        (r"/transaction", TransactionHandler),
        (r"/multi_query", MultiQueryHandler),
        (r"/connection", ConnectionQueryHandler),
        (r"/json", JsonQueryHandler),
        (r"/sign", SignHandler),
        (r"/guestbook", GuestbookHandler),
    ])


def make_pool(dsn: str) -> momoko.Pool:
    """The pool as Momoko's example builds it (bigger, for the load test)."""
    return momoko.Pool(dsn=dsn, size=1, max_size=10, setsession=("SET time_zone = '+00:00'",),
                       raise_connect_errors=False)


def run(dsn: str, port: int, address: str) -> None:
    """Momoko's ``main()``: connect before the IOLoop runs, then serve."""
    application = make_app()
    ioloop = tornado.ioloop.IOLoop.current()
    application.db = make_pool(dsn)  # type: ignore[attr-defined]

    # this is a one way to run ioloop in sync
    future = application.db.connect()  # type: ignore[attr-defined]
    ioloop.add_future(future, lambda f: ioloop.stop())
    ioloop.start()
    future.result()

    future = application.db.execute(SCHEMA)  # type: ignore[attr-defined]
    ioloop.run_sync(lambda: future)
    future = application.db.register_json()  # type: ignore[attr-defined]
    ioloop.run_sync(lambda: future)

    http_server = tornado.httpserver.HTTPServer(application)
    http_server.listen(port, address)
    for sig in (signal.SIGINT, signal.SIGTERM):
        ioloop.asyncio_loop.add_signal_handler(sig, ioloop.stop)  # type: ignore[attr-defined]
    print(f"momoko demo: http://{address}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        ioloop.start()
    finally:
        http_server.stop()
        application.db.close()  # type: ignore[attr-defined]


def main() -> None:
    from demos.app import database, port_taken

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    parser.add_argument("--port", type=int, default=8889)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    why = port_taken(args.address, args.port)
    if why is not None:
        sys.exit(f"momoko demo: cannot listen on {args.address}:{args.port} ({why}); "
                 f"pick another port with --port")
    with database(args.dsn) as dsn:  # a libpq string or a mysql:// URL
        run(dsn, args.port, args.address)


if __name__ == "__main__":
    main()
