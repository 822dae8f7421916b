"""Codec benchmark: C codec vs pure codec vs PyMySQL's own parsing.

    python bench/codec_bench.py [--dsn mysql://root@127.0.0.1:3306/test] [--rows 10000]

Captures the row packets of ``SELECT * FROM tornpool_codec_bench`` (10
mixed columns: INT, BIGINT, VARCHAR utf8mb4, DECIMAL(10,2), DOUBLE,
DATETIME(6), DATE, TIME, TEXT NULL, TEXT NOT NULL, JSON; created if missing)
from a real server once, then decodes that buffer repeatedly and prints the
median microseconds per row for each decoder.  The DSN defaults to
``$TORNPOOL_TEST_DSN`` or ``mysql://root@127.0.0.1:3306/test``.

The PyMySQL figure is ``MySQLResult._read_row_from_packet`` over
pre-split ``MysqlPacket`` objects: only the decoding, not PyMySQL's packet
reading, so it is a lower bound on what PyMySQL spends per row.

The second part times ``ResponseReader`` on whole responses captured from
the same server (SELECT 1; 20 rows x 6 columns; the 10k x 11 table; an OK
packet): ``start()`` plus one ``feed()`` over the complete response with its
column block already in ``meta``, in ns per response, C and pure, next to
PyMySQL's ``MySQLResult.read()`` over the same bytes (from a ``BytesIO``).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import types
from typing import Any, Callable, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pymysql  # noqa: E402
from pymysql.connections import MySQLResult  # noqa: E402
from pymysql.protocol import MysqlPacket  # noqa: E402

from codec_capture import BENCH_TABLE, DEFAULT_DSN, capture, connect_args, ensure_bench_table  # noqa: E402
from tornpool import codec  # noqa: E402


def timeit(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN", DEFAULT_DSN))
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    conn = pymysql.connect(**connect_args(args.dsn), charset="utf8mb4")
    try:
        ensure_bench_table(conn, args.rows)
        cap = capture(conn, "SELECT * FROM %s ORDER BY id" % BENCH_TABLE)
        responses = [(name, sql, raw_response(conn, sql)) for name, sql in READER_CASES]
    finally:
        conn.close()
    buf = bytearray(cap.rows_buf)
    print("captured %d rows, %d bytes, %d columns: %s"
          % (cap.nrows, len(buf), len(cap.converters),
             ", ".join("%s/%s" % (e, getattr(c, "__name__", c)) for e, c in cap.converters)))

    results = {}
    impls: List[Any] = [codec.pure] + ([codec.speedups] if codec.speedups is not None else [])
    for mod in impls:
        plan = mod.make_plan(cap.converters)
        rows, pos, seq = mod.decode_rows(buf, 0, len(buf), cap.first_seq, plan)
        assert len(rows) == cap.nrows and tuple(rows) == cap.pymysql_rows
        name = "C" if mod is codec.speedups else "pure"
        results[name] = timeit(lambda: mod.decode_rows(buf, 0, len(buf), cap.first_seq, plan),
                               args.repeat if name == "C" else max(3, args.repeat // 3))

    holder = types.SimpleNamespace(converters=cap.converters)
    packets = [MysqlPacket(p, None) for p in cap.payloads]

    def pymysql_path() -> None:
        read = MySQLResult._read_row_from_packet
        for pk in packets:
            pk._position = 0
            read(holder, pk)

    results["PyMySQL"] = timeit(pymysql_path, max(3, args.repeat // 3))
    if "C" not in results:
        print("(C codec not built: %s)" % codec._c_error)
    for name, secs in results.items():
        print("%-8s %7.3f us/row  (%.1f ms per %d rows)"
              % (name, secs / cap.nrows * 1e6, secs * 1e3, cap.nrows))
    if "C" in results:
        print("C is %.1fx PyMySQL's row path, %.1fx the pure codec"
              % (results["PyMySQL"] / results["C"], results["pure"] / results["C"]))
    print()
    reader_section(responses, args.repeat)
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
