"""What every suite shares: its common options and the run once per placement.

``run_suite`` starts the server for each placement asked for, lets the suite
measure into a results document, writes that document (``bench/_results.py``)
and prints the suite's Markdown tables, one set per placement.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._results import RESULTS_DIR, Recorder, server_version
from bench._server import Placed, bench_server, resolve_placements

Measure = Callable[[Placed, dict[str, Any], argparse.Namespace], None]
Render = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Suite:
    """A suite's name, what it measures into a results document, and how it
    renders one as Markdown."""

    name: str
    measure: Measure
    render: Render


def add_common_options(parser: argparse.ArgumentParser, runs: int, placement: str = "both") -> None:
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN") or None,
                        help="an existing server (default: $TORNPOOL_TEST_DSN, else a throwaway "
                             "mariadbd placed as --placement says)")
    parser.add_argument("--placement", choices=["pinned", "unpinned", "both"], default=placement,
                        help=f"pinned: server on the first CPU, clients on the last; unpinned: no "
                             f"affinity; both: the whole suite in each (default {placement})")
    parser.add_argument("--runs", type=int, default=runs,
                        help=f"rounds; every client runs once per round (default {runs})")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the JSON results go (default bench/results/)")
    parser.add_argument("--no-save", action="store_true", help="print the tables, write no results file")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"dsn", "results_dir", "no_save"}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in skip}


def run_suite(suite: Suite, args: argparse.Namespace) -> list[Path]:
    """Run ``suite`` in every placement ``args`` asks for.

    :returns: the results files written (none with ``--no-save``).
    """
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    written = []
    for placement in resolve_placements(args.placement, args.dsn):
        recorder = Recorder(suite.name, placement, _options(args))
        with bench_server(args.dsn, placement) as placed:
            recorder.placed(placed.server_cpus, placed.client_cpus, server_version(placed.dsn))
            suite.measure(placed, recorder.doc, args)
        path = recorder.finish(None if args.no_save else args.results_dir)
        print()
        print(suite.render(recorder.doc))
        if path is not None:
            print(f"# results: {path}", file=sys.stderr)
            written.append(path)
        sys.stdout.flush()
    return written
