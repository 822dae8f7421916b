"""``bench reader``: the codec's ResponseReader on whole captured responses.

    python -m bench reader [--dsn DSN] [--rows 10000] [--repeat 15]

Times ``start()`` plus one ``feed()`` over a complete response whose column
block is already in ``meta`` (SELECT 1; 20 rows x 6 columns; the 10k x 11
table; an OK packet), in ns per response, for the C reader and its pure
twin, next to PyMySQL's ``MySQLResult.read()`` over the same bytes (from a
``BytesIO``).  The responses are read off a real server once; every reader
is checked to return PyMySQL's rows first.  No I/O is timed.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from typing import Any, Callable, List, Tuple

import pymysql
from pymysql.connections import MySQLResult

from bench._server import bench_server, connect_params
from bench.codec_capture import BENCH_TABLE, ensure_bench_table
from tornpool import codec


READER_CASES = [
    ("SELECT 1", "SELECT 1"),
    ("20 rows x 6 cols", "SELECT id, big, name, price, ratio, ts FROM %s ORDER BY id LIMIT 20"
     % BENCH_TABLE),
    ("10k rows x 11 cols", "SELECT * FROM %s ORDER BY id" % BENCH_TABLE),
    ("OK packet", "UPDATE %s SET id = id WHERE id < 0" % BENCH_TABLE),
]


class _Shape:
    __slots__ = ("plan",)

    def __init__(self, plan: Any) -> None:
        self.plan = plan


def raw_response(conn: Any, sql: str) -> Tuple[bytes, int, List[Any], Any]:
    """The raw bytes of *sql*'s response, read off PyMySQL's socket.

    The statement runs once through a cursor (for its converters and rows),
    then its packets are sent again with ``build_command`` and the reply is
    read with exactly the byte counts the pure reader asks for.  Returns
    ``(bytes, first sequence id, converters, PyMySQL's rows)``."""
    with conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
        converters = list(getattr(conn._result, "converters", []))
    frame, seq = codec.pure_reader.build_command(3, sql.encode("utf8"))
    conn._sock.sendall(frame)
    r = codec.pure_reader.ResponseReader()
    r.start(seq)
    data = bytearray()
    meta: dict = {}
    while True:
        status = r.feed(data, r.pos, len(data), meta)
        if status == codec.NEED:
            data += conn._rfile.read(r.pos + r.need - len(data))
        elif status == codec.META:
            meta[r.meta_key] = _Shape(codec.pure.make_plan(converters))
        else:
            break
    assert status in (codec.OK, codec.RESULT), status
    if status == codec.RESULT:
        assert tuple(r.rows) == tuple(rows), "reader rows differ from PyMySQL's"
    return bytes(data), seq, converters, rows


class _NoSocket:
    def settimeout(self, timeout: Any) -> None:
        pass


def pymysql_reads(data: bytes, seq: int) -> Callable[[], Any]:
    """PyMySQL's MySQLResult.read() over *data*, one response per call."""
    conn = pymysql.connections.Connection(defer_connect=True, charset="utf8mb4")
    conn._sock = _NoSocket()
    conn._read_timeout = conn._current_timeout = None

    def read() -> Any:
        conn._rfile = io.BytesIO(data)
        conn._next_seq_id = seq
        result = MySQLResult(conn)
        result.read()
        return result

    return read


def reader_section(responses: List[Tuple[str, str, Any]], repeat: int) -> None:
    print("ResponseReader: start() + one feed() per whole response, column block in meta;")
    print("PyMySQL: MySQLResult.read() over the same bytes")
    impls: List[Tuple[str, Any, Any]] = [("pure", codec.pure_reader, codec.pure)]
    if codec.speedups is not None:
        impls.insert(0, ("C", codec.speedups, codec.speedups))
    print("%-20s %8s %12s %12s %12s %8s %9s"
          % ("response", "bytes", "C ns", "pure ns", "PyMySQL ns", "pure/C", "PyMySQL/C"))
    for name, _sql, (data, seq, converters, rows) in responses:
        buf = bytearray(data)
        n = len(buf)
        figures = {}
        for label, mod, plans in impls:
            r = mod.ResponseReader()
            meta: dict = {}
            r.start(seq)
            if r.feed(buf, 0, n, meta) == codec.META:
                meta[r.meta_key] = _Shape(plans.make_plan(converters))
            r.start(seq)
            status = r.feed(buf, 0, n, meta)
            assert status in (codec.OK, codec.RESULT) and r.pos == n, (label, status)
            if status == codec.RESULT:
                assert tuple(r.rows) == tuple(rows)

            def one(r: Any = r, meta: dict = meta) -> None:
                r.start(seq)
                r.feed(buf, 0, n, meta)

            figures[label] = per_call(one, repeat)
        figures["PyMySQL"] = per_call(pymysql_reads(data, seq), max(3, repeat // 3))
        c = figures.get("C")
        print("%-20s %8d %12s %12.0f %12.0f %8s %9s" % (
            name, n, "%.0f" % (c * 1e9) if c else "-", figures["pure"] * 1e9,
            figures["PyMySQL"] * 1e9, "%.1fx" % (figures["pure"] / c) if c else "-",
            "%.1fx" % (figures["PyMySQL"] / c) if c else "-"))


def per_call(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds per call of *fn*, batched to about 20 ms a batch."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(0.02 / once))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def main(argv: List[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench reader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=None, help="server to capture from (default: a throwaway one)")
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args(argv)
    with bench_server(args.dsn, "pinned") as placed:
        conn = pymysql.connect(**connect_params(placed.dsn), charset="utf8mb4")
        try:
            ensure_bench_table(conn, args.rows)
            responses = [(name, sql, raw_response(conn, sql)) for name, sql in READER_CASES]
        finally:
            conn.close()
    reader_section(responses, args.repeat)


if __name__ == "__main__":
    main()
