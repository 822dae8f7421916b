"""A small Tornado app on a tornpool Pool.

    python -m demos.app [--dsn mysql://...] [--port 8888]

Without ``--dsn`` (or ``TORNPOOL_TEST_DSN``) it starts a throwaway MariaDB of its
own (``tornpool.testing.MariaDBServer``) and removes it on exit.

Pages:

* ``/``          -- ``async def`` + ``await``: server version, time, the guest book;
* ``/classic``   -- the same through ``@gen.coroutine`` + ``yield``;
* ``/sign``      -- POST ``name`` and ``message``: one transaction;
* ``/slow``      -- ``SELECT SLEEP(1)``: open several at once, they overlap;
* ``/stats``     -- the pool's statistics in Prometheus text format.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

from tornado import gen, web

from tornpool import Pool

SCHEMA = """
CREATE TABLE IF NOT EXISTS guestbook (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(60) NOT NULL,
    message VARCHAR(500) NOT NULL,
    created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) CHARACTER SET utf8mb4
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>tornpool demo</title>
<style>body{{font-family:sans-serif;max-width:44em;margin:2em auto}}td,th{{padding:.2em .6em}}</style>
</head><body><h1>tornpool demo</h1>
<p>Served by <b>{style}</b> on {version}; server time {now}; pool: {pool}.</p>
<form method="post" action="/sign"><input name="name" placeholder="name" required>
<input name="message" placeholder="message" required size="40"><button>Sign</button></form>
<table><tr><th>when</th><th>who</th><th>said</th></tr>{rows}</table>
<p><a href="/">async/await</a> · <a href="/classic">gen.coroutine</a> · <a href="/slow">slow</a> ·
<a href="/stats">stats</a></p></body></html>"""


def render(style: str, head: Any, rows: Any, pool: Pool) -> str:
    version, now = head
    stats = pool.stats()
    body = "".join(
        f"<tr><td>{created:%Y-%m-%d %H:%M:%S}</td><td>{html.escape(name)}</td>"
        f"<td>{html.escape(message)}</td></tr>"
        for name, message, created in rows
    )
    return PAGE.format(
        style=style,
        version=html.escape(str(version)),
        now=now,
        pool=f"{stats['pool_size']} open, {stats['pool_available']} idle",
        rows=body,
    )


class Base(web.RequestHandler):
    @property
    def pool(self) -> Pool:
        return self.application.settings["pool"]  # type: ignore[no-any-return]


class AsyncHome(Base):
    async def get(self) -> None:
        head = (await self.pool.execute("SELECT VERSION(), NOW(6)")).fetchone()
        rows = (
            await self.pool.execute(
                "SELECT name, message, created FROM guestbook ORDER BY id DESC LIMIT 20"
            )
        ).fetchall()
        self.write(render("async def + await", head, rows, self.pool))


class ClassicHome(Base):
    @gen.coroutine
    def get(self) -> Iterator[Any]:
        cur = yield self.pool.execute("SELECT VERSION(), NOW(6)")
        head = cur.fetchone()
        cur = yield self.pool.execute(
            "SELECT name, message, created FROM guestbook ORDER BY id DESC LIMIT 20"
        )
        self.write(render("@gen.coroutine + yield", head, cur.fetchall(), self.pool))


class Sign(Base):
    async def post(self) -> None:
        name = self.get_body_argument("name")[:60]
        message = self.get_body_argument("message")[:500]
        async with self.pool.transaction() as conn:
            await conn.execute("INSERT INTO guestbook (name, message) VALUES (%s, %s)", (name, message))
        self.redirect("/")


class Slow(Base):
    async def get(self) -> None:
        slept, connection_id = (await self.pool.execute("SELECT SLEEP(1), CONNECTION_ID()")).fetchone()
        self.write({"slept": slept == 0, "connection_id": connection_id})


class Stats(Base):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.write(self.pool.prometheus())


def make_app(pool: Pool) -> web.Application:
    return web.Application(
        [
            (r"/", AsyncHome),
            (r"/classic", ClassicHome),
            (r"/sign", Sign),
            (r"/slow", Slow),
            (r"/stats", Stats),
        ],
        pool=pool,
        xsrf_cookies=False,
    )


async def serve(dsn: str, port: int, address: str) -> None:
    async with Pool(dsn, size=2, max_size=10, name="demo") as pool:
        await pool.execute(SCHEMA)
        app = make_app(pool)
        server = app.listen(port, address)
        print(f"tornpool demo: http://{address}:{port}/  (Ctrl-C to stop)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    from tornpool.testing import MariaDBServer

    print("tornpool demo: starting a throwaway MariaDB ...", flush=True)
    with MariaDBServer() as server:
        yield server.dsn


def port_taken(address: str, port: int) -> str | None:
    """Why the demo cannot listen on ``address:port``, or None."""
    probe = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        probe.close()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    why = port_taken(args.address, args.port)
    if why is not None:
        sys.exit(f"tornpool demo: cannot listen on {args.address}:{args.port} ({why}); "
                 f"pick another port with --port, e.g. `bash scripts/dev.sh demo --port {args.port + 1}`")
    with database(args.dsn) as dsn:
        asyncio.run(serve(dsn, args.port, args.address))


if __name__ == "__main__":
    main()
