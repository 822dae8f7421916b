"""``bench core``: one connection, tornpool vs the peers, side by side in one run.

    python -m bench core [--runs 5] [--queries 5000] [--fetches 5]
        [--placement pinned|unpinned|both] [--clients a,b] [--dsn DSN]

Scenarios (``bench/core_clients.py`` runs them in a fresh subprocess per
(client, round)):

* ``SELECT 1``, sequential: client CPU and wall time per query;
* the 10k fetch: ``SELECT *`` of 10,000 rows x 11 mixed columns (INT, BIGINT,
  VARCHAR utf8mb4, DECIMAL, DOUBLE, DATETIME(6), DATE, TIME, TEXT NULL, TEXT,
  JSON; the codec bench's table), ``--fetches`` times: CPU per row, rows/s.

Clients: tornpool (C codec), tornpool-pure (``TORNPOOL_CODEC=python``),
PyMySQL, mysqlclient, aiomysql, asyncmy; peers that are not installed are
listed with the reason.  A round runs every client once, in an order that
rotates from round to round; the ratios ``x asyncmy`` and ``x PyMySQL`` are
taken within each round and the table shows their median over the rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench import _stats
from bench._server import Placed
from bench._suite import Suite, choose, interleave, parser_for, run_child, run_suite
from bench.codec_capture import BENCH_TABLE, ensure_bench_table
from bench.core_clients import CLIENTS, MODULES

ROWS = 10_000


def prepare(dsn: str) -> None:
    """Create and fill the 10k-row table once per server."""
    import pymysql

    from bench._server import connect_params

    conn = pymysql.connect(**connect_params(dsn), charset="utf8mb4")
    try:
        ensure_bench_table(conn, ROWS)
    finally:
        conn.close()


def why_unavailable(client: str) -> str | None:
    """Why ``client`` cannot run here, or ``None`` when it can."""
    try:
        __import__(MODULES[client])
    except ImportError as exc:
        return f"not installed (import {exc.name or MODULES[client]} failed)"
    return None


def spawn(client: str, dsn: str, args: argparse.Namespace) -> dict[str, Any] | str:
    """One (client, round) in its own process: its figures, or why it failed."""
    env = dict(os.environ)
    if client == "tornpool-pure":
        env["TORNPOOL_CODEC"] = "python"
    else:
        env.pop("TORNPOOL_CODEC", None)
    cmd = [sys.executable, "-m", "bench.core_clients", client, dsn, str(args.queries),
           str(args.fetches), BENCH_TABLE]
    return run_child(cmd, env)


def measure(placed: Placed, doc: dict[str, Any], args: argparse.Namespace) -> None:
    prepare(placed.dsn)
    wanted = choose(args.clients, CLIENTS, CLIENTS, "client(s)")
    interleave(doc, f"core {placed.placement}", args.runs, wanted,
               lambda client: spawn(client, placed.dsn, args), why_unavailable)


def render(doc: dict[str, Any]) -> str:
    """The Markdown tables of one ``bench core`` results document."""
    rounds = _stats.rounds_of(doc)
    opts = doc["options"]
    head = (f"`bench core`, placement **{doc['placement']}**: {len(rounds)} rounds, "
            f"{opts['queries']} x SELECT 1, {opts['fetches']} x {ROWS}-row fetch per round; "
            "figures are medians over the rounds, ratios are medians of per-round ratios.")

    def row(client: str) -> list[str]:
        if client in doc["unavailable"]:
            return [client, doc["unavailable"][client]]

        def med(*path: str) -> float | None:
            return _stats.median_over_rounds(rounds, client, path)

        def rat(base: str, *path: str) -> str:
            return _stats.ratio(_stats.median_ratio(rounds, client, base, path))

        return [client,
                _stats.fmt(med("select1", "cpu_us")), rat("asyncmy", "select1", "cpu_us"),
                rat("pymysql", "select1", "cpu_us"), _stats.fmt(med("select1", "wall_us")),
                _stats.fmt(med("fetch", "cpu_us"), ".3f"), rat("asyncmy", "fetch", "cpu_us"),
                rat("pymysql", "fetch", "cpu_us"), _stats.fmt(med("fetch", "rows_per_s"), ",.0f")]

    header = ["client", "SELECT 1 CPU us/q", "x asyncmy", "x PyMySQL", "SELECT 1 wall us/q",
              "10k fetch CPU us/row", "x asyncmy", "x PyMySQL", "rows/s"]
    parts = [head, "", _stats.table(header, [row(c) for c in doc["clients"]]), "",
             _stats.machine_line(doc)]
    codecs = {r.get("tornpool", {}).get("codec") for r in rounds} - {None}
    if codecs - {"c"}:
        parts.append(f"- tornpool ran with the {'/'.join(sorted(codecs))} codec: the C codec is not built here")
    for f in doc.get("failures", []):
        parts.append(f"- round {f['round']}, {f['client']}: {f['error']}")
    return "\n".join(parts) + "\n"


SUITE = Suite("core", measure, render)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for("core", __doc__, runs=5)
    parser.add_argument("--queries", type=int, default=5000, help="SELECT 1 per round (default 5000)")
    parser.add_argument("--fetches", type=int, default=5, help="10k-row fetches per round (default 5)")
    parser.add_argument("--clients", default="", help=f"comma-separated subset of {','.join(CLIENTS)}")
    run_suite(SUITE, parser, argv)


if __name__ == "__main__":
    main()
