"""Row-decoding benchmark: C codec vs pure codec vs PyMySQL's own row path.

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
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from typing import Any, Callable, List

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
