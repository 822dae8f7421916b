"""``bench codec``: row decoding alone -- the C codec, its pure twin, PyMySQL.

    python -m bench codec [--runs 5] [--rows 10000] [--repeat 9]
        [--placement pinned|unpinned|both] [--dsn DSN]

Captures the row packets of ``SELECT * FROM tornpool_codec_bench`` (11 mixed
columns: INT, BIGINT, VARCHAR utf8mb4, DECIMAL(10,2), DOUBLE, DATETIME(6),
DATE, TIME, TEXT NULL, TEXT, JSON; ``bench/codec_capture.py``) from the server
once, checks that every decoder returns exactly PyMySQL's rows, then decodes
that buffer over and over.  A round runs each decoder ``--repeat`` times (a
third as often for the two slow ones) and keeps the median CPU time; the
decoders take turns within a round, and the ratios are medians of per-round
ratios.

The PyMySQL figure is ``MySQLResult._read_row_from_packet`` over pre-split
``MysqlPacket`` objects: only its row decoding, not its packet reading, so it
is a lower bound on what PyMySQL spends per row.  The default placement is
``pinned``: the decoding does no I/O, the server only serves the capture.
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
from collections.abc import Callable
from typing import Any

import pymysql
from pymysql.connections import MySQLResult
from pymysql.protocol import MysqlPacket

from bench import _stats
from bench._server import Placed, connect_params
from bench._suite import Suite, interleave, parser_for, run_suite
from bench.codec_capture import BENCH_TABLE, capture, ensure_bench_table

DECODERS = ("C", "pure", "PyMySQL")


def _cpu_us_per_row(fn: Callable[[], Any], repeat: int, rows: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times) / rows * 1e6


def measure(placed: Placed, doc: dict[str, Any], args: argparse.Namespace) -> None:
    from tornpool import codec

    conn = pymysql.connect(**connect_params(placed.dsn), charset="utf8mb4")
    try:
        ensure_bench_table(conn, args.rows)
        cap = capture(conn, f"SELECT * FROM {BENCH_TABLE} ORDER BY id")
    finally:
        conn.close()
    buf = bytearray(cap.rows_buf)
    decoders: dict[str, Callable[[], Any]] = {}
    unavailable: dict[str, str] = {}
    impls = {"pure": codec.pure, "C": codec.speedups}
    for name, mod in impls.items():
        if mod is None:
            unavailable[name] = f"not built here (tornpool.codec.available() = {codec.available()})"
            continue
        plan = mod.make_plan(cap.converters)
        rows = mod.decode_rows(buf, 0, len(buf), cap.first_seq, plan)[0]
        if tuple(rows) != cap.pymysql_rows:
            raise SystemExit(f"the {name} codec decoded rows that differ from PyMySQL's")
        decoders[name] = (lambda m, p: lambda: m.decode_rows(buf, 0, len(buf), cap.first_seq, p))(mod, plan)
    holder = types.SimpleNamespace(converters=cap.converters)
    packets = [MysqlPacket(p, None) for p in cap.payloads]

    def pymysql_rows() -> None:
        read = MySQLResult._read_row_from_packet
        for pk in packets:
            pk._position = 0
            read(holder, pk)

    decoders["PyMySQL"] = pymysql_rows
    doc["capture"] = {"rows": cap.nrows, "bytes": len(buf), "columns": len(cap.converters)}

    def one(name: str) -> dict[str, Any]:
        repeat = args.repeat if name == "C" else max(1, args.repeat // 3)
        return {"cpu_us": _cpu_us_per_row(decoders[name], repeat, cap.nrows)}

    interleave(doc, f"codec {placed.placement}", args.runs, DECODERS, one, unavailable.get)


def render(doc: dict[str, Any]) -> str:
    """The Markdown table of one ``bench codec`` results document."""
    rounds = _stats.rounds_of(doc)
    cap = doc["capture"]
    head = (f"`bench codec`, placement **{doc['placement']}**: {cap['rows']} captured rows x "
            f"{cap['columns']} columns ({cap['bytes']:,} bytes), {len(rounds)} rounds; CPU per row, "
            "median over the rounds; ratios are medians of per-round ratios.")
    rows = []
    for name in doc["clients"]:
        if name in doc["unavailable"]:
            rows.append([name, doc["unavailable"][name]])
            continue
        rows.append([name, _stats.fmt(_stats.median_over_rounds(rounds, name, ("cpu_us",)), ".3f"),
                     _stats.ratio(_stats.median_ratio(rounds, name, "PyMySQL", ("cpu_us",))),
                     _stats.ratio(_stats.median_ratio(rounds, name, "pure", ("cpu_us",)))])
    table = _stats.table(["decoder", "CPU us/row", "x PyMySQL", "x pure"], rows)
    return "\n".join([head, "", table, "", _stats.machine_line(doc)]) + "\n"


SUITE = Suite("codec", measure, render)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for("codec", __doc__, runs=5, placement="pinned")
    parser.add_argument("--rows", type=int, default=10000, help="rows captured (default 10000)")
    parser.add_argument("--repeat", type=int, default=9,
                        help="decodes of the C codec per round; a third as many of the others (default 9)")
    run_suite(SUITE, parser, argv)


if __name__ == "__main__":
    main()
