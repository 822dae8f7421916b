"""``bench floor``: what a ``SELECT 1`` round trip costs the client, layer by layer.

    python -m bench floor [--runs 5] [--queries 4000] [--placement pinned|unpinned|both] [--dsn DSN]

Each layer sends the 13-byte ``COM_QUERY "SELECT 1"`` packet and waits for the
whole reply, adding one piece of machinery at a time, so the cost of each
piece shows:

* one connection, sequential: ``blocking socket`` (``sendall`` + ``recv``:
  the floor of any blocking client), ``mysqlclient`` and ``PyMySQL`` (whole
  drivers, for scale); ``asyncio Protocol`` (``data_received`` resolves a
  Future once the reply is in), ``asyncio BufferedProtocol`` (the same with
  ``get_buffer``/``buffer_updated``: no bytes object per read),
  ``IOStream.read_into`` (Tornado's, for comparison), ``asyncmy`` (the
  leanest asyncio driver, for scale), ``tornpool`` (``await conn.execute``:
  the fast path, on a BufferedProtocol), ``tornpool, greenlet path`` (a
  streaming cursor: PyMySQL in the worker greenlet);
* ten connections at once, one coroutine each: ``IOStream.read_into x10``,
  ``tornpool x10``; then ``tornpool Pool, 100 coroutines`` (``pool.execute``
  on a pool of 10: the pool bench's workload).

Figures are client CPU (``process_time``) per query.  All layers are opened
first; a round then runs each once, in an order that rotates from round to
round, and the table shows the median over the rounds.  The gap between the
blocking floor and the event-loop floor is what an event-loop client pays
for sleeping in ``epoll_wait`` and running the loop instead of sleeping in
``recv``; no driver code can win it back.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pymysql

from bench import _stats
from bench._server import Placed, connect_params, peer_params
from bench._suite import Suite, parser_for, run_suite

QUERY = b"\x09\x00\x00\x00\x03SELECT 1"
CONCURRENT = 10
POOL_COROUTINES = 100


@dataclass
class Layer:
    """``run(n)`` performs about ``n`` round trips and returns how many it did."""

    name: str
    run: Callable[[int], Awaitable[int]]
    close: Callable[[], Awaitable[None]]
    concurrent: bool = False


async def _nothing() -> None:
    return None


def _raw_socket(dsn: str) -> tuple[Any, socket.socket, int]:
    """A logged-in PyMySQL connection (kept, so its socket stays open), its
    socket, and the size of the reply to ``SELECT 1`` on it."""
    conn = pymysql.connect(**connect_params(dsn))
    sock: socket.socket = conn._sock
    sock.sendall(QUERY)
    time.sleep(0.05)
    size = len(sock.recv(65536))
    return conn, sock, size


class _Protocol(asyncio.Protocol):
    def __init__(self, size: int) -> None:
        self.size = size
        self.got = 0
        self.fut: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.size and self.fut is not None:
            self.got = 0
            self.fut.set_result(None)


class _BufferedProtocol(asyncio.BufferedProtocol):
    """Reads straight into one preallocated buffer; resolves the Future once
    the whole reply is in."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.got = 0
        self.view = memoryview(bytearray(65536))
        self.fut: asyncio.Future[None] | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.got:]

    def buffer_updated(self, nbytes: int) -> None:
        self.got += nbytes
        if self.got >= self.size and self.fut is not None:
            self.got = 0
            self.fut.set_result(None)


def blocking_layers(dsn: str, skipped: dict[str, str]) -> list[Layer]:
    keep, sock, size = _raw_socket(dsn)

    async def raw(n: int) -> int:
        for _ in range(n):
            sock.sendall(QUERY)
            got = 0
            while got < size:
                got += len(sock.recv(65536))
        return n

    async def close_raw() -> None:
        keep.close()

    layers = [Layer("blocking socket", raw, close_raw)]
    drivers: list[tuple[str, Any]] = []
    try:
        import MySQLdb

        drivers.append(("mysqlclient", MySQLdb.connect(**peer_params(dsn, "db", "passwd"))))
    except ImportError:
        skipped["mysqlclient"] = "not installed"
    drivers.append(("PyMySQL", pymysql.connect(**peer_params(dsn, "database", "password"))))
    for name, conn in drivers:
        cur = conn.cursor()

        async def query(n: int, cur: Any = cur) -> int:
            for _ in range(n):
                cur.execute("SELECT 1")
                cur.fetchall()
            return n

        async def close(conn: Any = conn) -> None:
            conn.close()

        layers.append(Layer(name, query, close))
    return layers


async def protocol_layers(dsn: str, skipped: dict[str, str]) -> list[Layer]:
    loop = asyncio.get_running_loop()
    layers = []
    for name, factory in (("asyncio Protocol", _Protocol), ("asyncio BufferedProtocol", _BufferedProtocol)):
        keep, sock, size = _raw_socket(dsn)
        sock.setblocking(False)
        transport, proto = await loop.create_connection(functools.partial(factory, size), sock=sock)

        async def run(n: int, proto: Any = proto, transport: Any = transport) -> int:
            for _ in range(n):
                proto.fut = loop.create_future()
                transport.write(QUERY)
                await proto.fut
            return n

        async def close(transport: Any = transport, keep: Any = keep) -> None:
            transport.close()
            keep.close()

        layers.append(Layer(name, run, close))
    return layers


async def tornado_layers(dsn: str, skipped: dict[str, str]) -> list[Layer]:
    from tornado.iostream import IOStream

    keep, sock, size = _raw_socket(dsn)
    sock.setblocking(False)
    stream = IOStream(sock)
    view = memoryview(bytearray(size))

    async def iostream(n: int) -> int:
        for _ in range(n):
            sock.send(QUERY)
            await stream.read_into(view)  # type: ignore[arg-type]
        return n

    async def close_stream() -> None:
        stream.close()
        keep.close()

    return [Layer("IOStream.read_into", iostream, close_stream)]


async def driver_layers(dsn: str, skipped: dict[str, str]) -> list[Layer]:
    import tornpool

    layers = []
    try:
        import asyncmy

        mconn = await asyncmy.connect(**peer_params(dsn))
        mcur = mconn.cursor()

        async def asyncmy_run(n: int) -> int:
            for _ in range(n):
                await mcur.execute("SELECT 1")
                await mcur.fetchall()
            return n

        async def asyncmy_close() -> None:
            mconn.close()

        layers.append(Layer("asyncmy", asyncmy_run, asyncmy_close))
    except ImportError:
        skipped["asyncmy"] = "not installed"
    conn = await tornpool.connect(dsn)

    async def full(n: int) -> int:
        for _ in range(n):
            (await conn.execute("SELECT 1")).fetchall()
        return n

    layers.append(Layer("tornpool", full, conn.close))
    slow = await tornpool.connect(dsn)

    async def greened(n: int) -> int:
        # a streaming cursor runs PyMySQL in the worker greenlet: the path
        # that serves what the fast path does not
        for _ in range(n):
            cur = await slow.execute("SELECT 1", cursor=tornpool.SSCursor)
            await cur.fetchall()
        return n

    layers.append(Layer("tornpool, greenlet path", greened, slow.close))
    return layers


async def concurrent_layers(dsn: str, skipped: dict[str, str]) -> list[Layer]:
    import tornpool
    from tornado.iostream import IOStream

    raws = [_raw_socket(dsn) for _ in range(CONCURRENT)]
    streams = []
    for _, sock, size in raws:
        sock.setblocking(False)
        streams.append((sock, IOStream(sock), memoryview(bytearray(size))))

    async def one(n: int, sock: socket.socket, stream: Any, view: memoryview) -> None:
        for _ in range(n):
            sock.send(QUERY)
            await stream.read_into(view)

    async def iostreams(n: int) -> int:
        per = max(1, n // CONCURRENT)
        await asyncio.gather(*[one(per, *s) for s in streams])
        return per * CONCURRENT

    async def close_streams() -> None:
        for (_, stream, _), (keep, _, _) in zip(streams, raws):
            stream.close()
            keep.close()

    conns = [await tornpool.connect(dsn) for _ in range(CONCURRENT)]

    async def each(n: int, conn: tornpool.Connection) -> None:
        for _ in range(n):
            (await conn.execute("SELECT 1")).fetchall()

    async def all_conns(n: int) -> int:
        per = max(1, n // CONCURRENT)
        await asyncio.gather(*[each(per, c) for c in conns])
        return per * CONCURRENT

    async def close_conns() -> None:
        for c in conns:
            await c.close()

    pool = tornpool.Pool(dsn, size=CONCURRENT, max_size=CONCURRENT)
    await pool.connect()

    async def user(n: int) -> None:
        for _ in range(n):
            (await pool.execute("SELECT 1")).fetchall()

    async def users(n: int) -> int:
        per = max(1, n // POOL_COROUTINES)
        await asyncio.gather(*[user(per) for _ in range(POOL_COROUTINES)])
        return per * POOL_COROUTINES

    return [Layer(f"IOStream.read_into x{CONCURRENT}", iostreams, close_streams, True),
            Layer(f"tornpool x{CONCURRENT}", all_conns, close_conns, True),
            Layer(f"tornpool Pool, {POOL_COROUTINES} coroutines", users, pool.close, True)]


async def _measure(dsn: str, runs: int, queries: int, doc: dict[str, Any]) -> None:
    skipped: dict[str, str] = {}
    layers = blocking_layers(dsn, skipped)
    for opener in (protocol_layers, tornado_layers, driver_layers, concurrent_layers):
        layers += await opener(dsn, skipped)
    doc.update(clients=[layer.name for layer in layers] + list(skipped), unavailable=skipped,
               rounds=[], failures=[])
    try:
        for layer in layers:  # warm every layer up, unmeasured
            await layer.run(100)
        for rnd in range(runs):
            order = _stats.rotated(layers, rnd)
            figures = {}
            for layer in order:
                n = queries * 5 if layer.concurrent else queries
                c0 = time.process_time()
                done = await layer.run(n)
                figures[layer.name] = {"cpu_us": (time.process_time() - c0) / done * 1e6, "queries": done}
            doc["rounds"].append({"order": [layer.name for layer in order], "results": figures})
    finally:
        for layer in layers:
            await layer.close()


def measure(placed: Placed, doc: dict[str, Any], args: argparse.Namespace) -> None:
    asyncio.run(_measure(placed.dsn, args.runs, args.queries, doc))
    print(f"# floor {placed.placement}: {args.runs} rounds done", file=sys.stderr)


def render(doc: dict[str, Any]) -> str:
    """The Markdown table of one ``bench floor`` results document."""
    rounds = _stats.rounds_of(doc)
    o = doc["options"]
    head = (f"`bench floor`, placement **{doc['placement']}**: a `SELECT 1` round trip layer by layer, "
            f"client CPU per query, median of {len(rounds)} rounds of {o['queries']} queries "
            f"({o['queries'] * 5} for the concurrent lines).")
    rows = [[name, doc["unavailable"][name]] if name in doc["unavailable"] else
            [name, _stats.fmt(_stats.median_over_rounds(rounds, name, ("cpu_us",)), ".1f")]
            for name in doc["clients"]]
    return "\n".join([head, "", _stats.table(["layer", "CPU us/query"], rows), "",
                      _stats.machine_line(doc)]) + "\n"


SUITE = Suite("floor", measure, render)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for("floor", __doc__, runs=5)
    parser.add_argument("--queries", type=int, default=4000,
                        help="round trips per layer per round; 5x that for the concurrent ones (default 4000)")
    run_suite(SUITE, parser, argv)


if __name__ == "__main__":
    main()
