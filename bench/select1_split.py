"""Where one ``SELECT 1`` spends client CPU, layer by layer.

    python bench/select1_split.py [--dsn DSN] [-n 20000]

1. protocol only: PyMySQL's cursor path plus tornpool's packet/metadata code,
   with the server's reply pre-loaded into the connection's buffer and writes
   discarded (no I/O, no greenlet switch);
2. the same through ``Connection._run``: worker greenlet, busy/closed checks,
   command rules (still no I/O);
3. the real thing: ``await conn.execute("SELECT 1")``;
4. blocking PyMySQL, for scale.

Medians of 5 rounds, microseconds of process CPU per query.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any, Callable

import pymysql

import tornpool


def _median_us(fn: Callable[[], Any], n: int) -> float:
    rounds = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(n):
            fn()
        rounds.append((time.process_time() - t) / n * 1e6)
    return statistics.median(rounds)


class _Discard:
    """Stands in for the IOStream: swallows writes, never 'writing'."""

    def writing(self) -> bool:
        return True

    def closed(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        pass


async def _async_part(dsn: str, n: int) -> tuple[float, float, float]:
    conn = await tornpool.connect(dsn)
    raw, sock = conn.raw, conn._gsock
    assert sock is not None
    sock.pos = sock.end = 0
    await conn.execute("SELECT 1")
    reply = bytes(sock.buf[: sock.end])
    size = len(reply)
    real_stream = sock.stream

    def load() -> None:
        sock.buf[:size] = reply
        sock.pos, sock.end = 0, size

    def protocol_only() -> None:
        load()
        cur = raw.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()

    sock.stream = _Discard()  # type: ignore[assignment]
    try:
        for _ in range(500):
            protocol_only()
        protocol = _median_us(protocol_only, n)
        rounds = []
        for _ in range(5):
            t = time.process_time()
            for _ in range(n):
                load()
                cur = raw.cursor()
                await conn._run(cur.execute, ("SELECT 1", None), None)
            rounds.append((time.process_time() - t) / n * 1e6)
        bridge = statistics.median(rounds)
    finally:
        sock.stream = real_stream
    rounds = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(n // 4):
            (await conn.execute("SELECT 1")).fetchall()
        rounds.append((time.process_time() - t) / (n // 4) * 1e6)
    await conn.close()
    return protocol, bridge, statistics.median(rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN", "mysql://root@127.0.0.1:3306/test"))
    ap.add_argument("-n", type=int, default=20000)
    args = ap.parse_args()
    protocol, bridge, full = asyncio.run(_async_part(args.dsn, args.n))
    params = tornpool.parse_dsn(args.dsn)
    blocking_conn = pymysql.connect(**params)
    cur = blocking_conn.cursor()

    def blocking() -> None:
        cur.execute("SELECT 1")
        cur.fetchall()

    blocking_us = _median_us(blocking, args.n // 4)
    blocking_conn.close()
    print(f"1. protocol only (PyMySQL cursor + tornpool packet code): {protocol:6.2f} us/q")
    print(f"2. + worker greenlet and command rules, no I/O:            {bridge:6.2f} us/q")
    print(f"3. await conn.execute('SELECT 1'), real I/O:               {full:6.2f} us/q")
    print(f"4. blocking PyMySQL, real I/O:                              {blocking_us:6.2f} us/q")


if __name__ == "__main__":
    main()
