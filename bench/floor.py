"""What a ``SELECT 1`` round trip costs the client before any driver code.

    python -m bench floor [--dsn DSN] [--queries 4000] [--runs 5] [--no-pin]

Each line sends the 13-byte ``COM_QUERY "SELECT 1"`` packet and waits for the
whole reply, adding one layer at a time, so the cost of each layer shows:

* one connection, sequential:
  ``blocking socket`` (``sendall`` + ``recv``: the floor of any blocking
  client), ``mysqlclient`` and ``pymysql`` (whole drivers, for scale),
  ``asyncio Protocol`` (asyncio's own transport), ``IOStream.read_into``
  (Tornado's, which tornpool uses), ``+ worker greenlet`` (the same, issued
  from a tornpool worker greenlet), ``tornpool`` (``await conn.execute``);
* ten connections, one coroutine each: ``IOStream.read_into x10``,
  ``tornpool x10``; then ``tornpool Pool`` (100 coroutines on a pool of 10,
  the pool bench's workload).

Figures are client CPU (user + system, ``getrusage``) per query, the median of
``--runs`` rounds.  The gap between the blocking floor and the event-loop
floor is what an event-loop client pays for sleeping in ``epoll_wait`` and
running the loop instead of sleeping in ``recv``; no driver code can win it
back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pymysql

from bench._server import bench_server, connect_params

QUERY = b"\x09\x00\x00\x00\x03SELECT 1"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _raw_socket(dsn: str) -> tuple[Any, socket.socket, int]:
    """A logged-in PyMySQL connection's socket and the size of the reply to
    ``SELECT 1`` on it (the connection object keeps the socket open)."""
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


def _rounds(run: Callable[[], None], n: int, runs: int) -> float:
    out = []
    for _ in range(runs):
        c0 = _cpu()
        run()
        out.append((_cpu() - c0) / n * 1e6)
    return statistics.median(out)


async def _arounds(run: Callable[[], Awaitable[None]], n: int, runs: int) -> float:
    out = []
    for _ in range(runs):
        c0 = _cpu()
        await run()
        out.append((_cpu() - c0) / n * 1e6)
    return statistics.median(out)


def sequential_blocking(dsn: str, n: int, runs: int) -> dict[str, float]:
    res: dict[str, float] = {}
    keep, sock, size = _raw_socket(dsn)

    def raw() -> None:
        for _ in range(n):
            sock.sendall(QUERY)
            got = 0
            while got < size:
                got += len(sock.recv(65536))

    res["blocking socket"] = _rounds(raw, n, runs)
    keep.close()
    drivers: list[tuple[str, Any]] = [("pymysql", pymysql.connect(**connect_params(dsn)))]
    try:
        import MySQLdb  # type: ignore[import-untyped]

        p = connect_params(dsn)
        drivers.append(("mysqlclient", MySQLdb.connect(host=p["host"], port=p["port"], user=p["user"],
                                                       passwd=p["password"], db=p["database"])))
    except ImportError:
        pass
    for name, conn in drivers:
        cur = conn.cursor()

        def query() -> None:
            for _ in range(n):
                cur.execute("SELECT 1")
                cur.fetchall()

        res[name] = _rounds(query, n, runs)
        conn.close()
    return res


async def sequential_async(dsn: str, n: int, runs: int) -> dict[str, float]:
    import tornpool
    from tornado.iostream import IOStream
    from tornpool.green import GreenWorker

    loop = asyncio.get_running_loop()
    res: dict[str, float] = {}

    keep, sock, size = _raw_socket(dsn)
    sock.setblocking(False)
    transport, proto = await loop.create_connection(lambda: _Protocol(size), sock=sock)

    async def protocol() -> None:
        for _ in range(n):
            proto.fut = loop.create_future()
            transport.write(QUERY)
            await proto.fut

    res["asyncio Protocol"] = await _arounds(protocol, n, runs)
    transport.close()
    keep.close()

    keep, sock, size = _raw_socket(dsn)
    sock.setblocking(False)
    stream = IOStream(sock)
    view = memoryview(bytearray(size))

    async def iostream() -> None:
        for _ in range(n):
            sock.send(QUERY)
            await stream.read_into(view)  # type: ignore[arg-type]

    res["IOStream.read_into"] = await _arounds(iostream, n, runs)
    worker: GreenWorker[Any] = GreenWorker()

    def in_worker() -> None:
        sock.send(QUERY)
        fut = stream.read_into(view)  # type: ignore[arg-type]
        if not fut.done():  # type: ignore[attr-defined]
            worker.wait(fut)

    async def greened() -> None:
        for _ in range(n):
            await worker.run(in_worker)

    res["+ worker greenlet"] = await _arounds(greened, n, runs)
    worker.close()
    stream.close()
    keep.close()

    conn = await tornpool.connect(dsn)

    async def full() -> None:
        for _ in range(n):
            (await conn.execute("SELECT 1")).fetchall()

    res["tornpool"] = await _arounds(full, n, runs)
    await conn.close()
    return res


async def concurrent(dsn: str, n: int, runs: int) -> dict[str, float]:
    import tornpool
    from tornado.iostream import IOStream

    res: dict[str, float] = {}
    per = n // 10

    async def one(sock: socket.socket, size: int) -> None:
        sock.setblocking(False)
        stream = IOStream(sock)
        view = memoryview(bytearray(size))
        for _ in range(per):
            sock.send(QUERY)
            await stream.read_into(view)  # type: ignore[arg-type]
        stream.close()

    out = []
    for _ in range(runs):
        # a fresh IOStream per round: a closed stream closes its socket
        raws = [_raw_socket(dsn) for _ in range(10)]
        c0 = _cpu()
        await asyncio.gather(*[one(sock, size) for _, sock, size in raws])
        out.append((_cpu() - c0) / (per * 10) * 1e6)
        for keep, _, _ in raws:
            keep.close()
    res["IOStream.read_into x10"] = statistics.median(out)

    conns = [await tornpool.connect(dsn) for _ in range(10)]

    async def each(conn: tornpool.Connection) -> None:
        for _ in range(per):
            (await conn.execute("SELECT 1")).fetchall()

    async def all_conns() -> None:
        await asyncio.gather(*[each(c) for c in conns])

    res["tornpool x10"] = await _arounds(all_conns, per * 10, runs)
    for c in conns:
        await c.close()

    pool = tornpool.Pool(dsn, size=10, max_size=10)
    await pool.connect()
    per100 = n // 100

    async def user() -> None:
        for _ in range(per100):
            async with pool.acquire() as conn:
                (await conn.execute("SELECT 1")).fetchall()

    async def users() -> None:
        await asyncio.gather(*[user() for _ in range(100)])

    res["tornpool Pool, 100 coroutines"] = await _arounds(users, per100 * 100, runs)
    await pool.close()
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    args = ap.parse_args(argv)
    with bench_server(args.dsn, args.pin) as dsn:
        n, runs = args.queries, args.runs
        seq = sequential_blocking(dsn, n, runs)
        seq.update(asyncio.run(sequential_async(dsn, n, runs)))
        conc = asyncio.run(concurrent(dsn, n * 5, runs))
    print(f"\nSELECT 1 round trips, client CPU (user+sys) us/query, median of {runs} rounds, "
          f"Python {sys.version.split()[0]}\n")
    print("| layer | us/query |")
    print("|---|---:|")
    for name, us in seq.items():
        print(f"| {name} | {us:.1f} |")
    for name, us in conc.items():
        print(f"| {name} | {us:.1f} |")


if __name__ == "__main__":
    main()
