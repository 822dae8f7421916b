"""Run a benchmark suite: ``python -m bench SUITE [options]`` (``SUITE --help`` for its options).

* ``core`` (default): one connection, tornpool vs PyMySQL, mysqlclient,
  aiomysql, asyncmy -- sequential SELECT 1 and a 10k-row fetch;
* ``pool``: pools under 100 coroutines / 10 connections -- tornpool, asyncmy,
  aiomysql, TorMySQL, a thread pool over mysqlclient;
* ``codec``: row decoding alone, C vs pure twin vs PyMySQL;
* ``floor``: a SELECT 1 round trip layer by layer, from a blocking socket to
  tornpool's pool;
* ``reader``: the codec's ResponseReader on whole responses, C vs pure twin vs
  PyMySQL (prints its table; no results file);
* ``sqlite``: the SQLite process proxy vs one process with threads
  (bench/sqlite_bench.py; prints its tables);
* ``dbapi``: tornpool.dbapi.ExecutorPool over mysqlclient vs a bare
  ThreadPoolExecutor over mysqlclient, tornpool's Pool and asyncmy's
  (bench/dbapi_bench.py);
* ``report``: the newest results as Markdown tables and PNG plots in docs/bench/;
* ``all``: core, pool, codec and floor in both placements, then the report
  (``all --help``).

Every suite takes ``--placement pinned|unpinned|both``, ``--runs``, ``--dsn``
and writes ``bench/results/<suite>-<placement>-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

SUITES = {"core": "bench.core_bench", "pool": "bench.pool_bench", "codec": "bench.codec_bench",
          "floor": "bench.floor", "reader": "bench.reader_bench", "sqlite": "bench.sqlite_bench",
          "dbapi": "bench.dbapi_bench", "report": "bench.report"}
ALL = ("core", "pool", "codec", "floor")


def run_all(argv: list[str]) -> None:
    from bench._results import RESULTS_DIR
    from bench.report import DOCS_DIR, report

    parser = argparse.ArgumentParser(
        prog="python -m bench all",
        description="Run core, pool, codec and floor (each in both placements by default, with its "
                    "own default --runs), then render the report.")
    parser.add_argument("--suites", default=",".join(ALL), help=f"subset of {','.join(ALL)}")
    parser.add_argument("--placement", choices=["pinned", "unpinned", "both"], default="both")
    parser.add_argument("--runs", type=int, default=None, help="override every suite's --runs")
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=DOCS_DIR, help="where the report goes (default docs/bench/)")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if any(s not in ALL for s in suites):
        raise SystemExit(f"--suites: a comma-separated subset of {','.join(ALL)}")
    for suite in suites:
        common = ["--placement", args.placement, "--results-dir", str(args.results_dir)]
        if args.runs is not None:
            common += ["--runs", str(args.runs)]
        if args.dsn:
            common += ["--dsn", args.dsn]
        print(f"\n## bench {suite}\n", flush=True)
        importlib.import_module(SUITES[suite]).main(common)
    if not args.no_report:
        for path in report(args.results_dir, args.out):
            print(path)


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    suite = argv.pop(0) if argv and not argv[0].startswith("-") else "core"
    if suite == "all":
        run_all(argv)
        return
    if suite not in SUITES:
        raise SystemExit(f"unknown suite {suite!r}; one of: {', '.join([*SUITES, 'all'])}")
    importlib.import_module(SUITES[suite]).main(argv)


if __name__ == "__main__":
    main()
