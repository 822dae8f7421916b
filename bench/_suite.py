"""What every suite shares: its common options and the run once per placement.

``run_suite`` starts the server for each placement asked for, lets the suite
measure into a results document, writes that document (``bench/_results.py``)
and prints the suite's Markdown tables, one set per placement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
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


def parser_for(suite: str, doc: str | None, runs: int, placement: str = "both") -> argparse.ArgumentParser:
    """An argument parser for ``python -m bench <suite>``, with the common options."""
    parser = argparse.ArgumentParser(prog=f"python -m bench {suite}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, runs, placement)
    return parser


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


def choose(given: str, default: Sequence[str], known: Sequence[str], what: str) -> list[str]:
    """The names of a comma-separated option (``default`` when empty).

    :raises SystemExit: a name is not in ``known``.
    """
    names = [n.strip() for n in given.split(",") if n.strip()] if given else list(default)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"unknown {what} {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    return names


def run_child(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> dict[str, Any] | str:
    """Run one measuring subprocess: the JSON of its last line of output, or why it failed."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:g} s"
    if proc.returncode:
        return "failed: " + (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    got: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return got


def interleave(doc: dict[str, Any], label: str, runs: int, names: Sequence[str],
               measure_one: Callable[[str], dict[str, Any] | str],
               why_unavailable: Callable[[str], str | None] = lambda name: None) -> None:
    """``runs`` rounds of ``measure_one(name)`` for every name that can run
    here, the order rotating from round to round, into ``doc["rounds"]``.

    ``doc["clients"]`` becomes ``names`` and ``doc["unavailable"]`` says why
    the others cannot run; a name whose measurement returns an error string --
    or a part of whose figures is ``{"error": ...}`` -- goes to
    ``doc["failures"]`` instead."""
    from bench._stats import rotated

    unavailable = {n: why for n in names if (why := why_unavailable(n))}
    active = [n for n in names if n not in unavailable]
    doc.update(clients=list(names), unavailable=unavailable)
    doc.setdefault("rounds", [])
    doc.setdefault("failures", [])
    for rnd in range(runs):
        order = rotated(active, rnd)
        figures: dict[str, Any] = {}
        for name in order:
            got = measure_one(name)
            if isinstance(got, str):
                doc["failures"].append({"round": rnd + 1, "client": name, "error": got})
                continue
            for part, fig in list(got.items()):
                if isinstance(fig, dict) and "error" in fig:
                    doc["failures"].append({"round": rnd + 1, "client": name, "scenario": part,
                                            "error": fig["error"]})
                    del got[part]
            figures[name] = got
        doc["rounds"].append({"order": order, "results": figures})
        print(f"# {label}: round {rnd + 1}/{runs} done", file=sys.stderr)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"dsn", "results_dir", "no_save"}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in skip}


def run_suite(suite: Suite, parser: argparse.ArgumentParser, argv: list[str] | None) -> list[Path]:
    """Parse ``argv`` (``None``: this process's arguments) and run ``suite`` in
    every placement it asks for.

    :returns: the results files written (none with ``--no-save``).
    """
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench", suite.name, *argv])
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    written = []
    for placement in resolve_placements(args.placement, args.dsn):
        recorder = Recorder(suite.name, placement, _options(args), command)
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
