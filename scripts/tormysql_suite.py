#!/usr/bin/env python3
"""TorMySQL's own test suite, run against ``tornpool.tormysql``.

    python scripts/tormysql_suite.py [--repo PATH] [--ref REF] [--upstream] [-k EXPR]

1. takes ``tests/`` from TorMySQL's git repository (at ``--ref``, default
   HEAD) into a scratch directory -- nothing of TorMySQL is copied into this
   repository;
2. starts a throwaway MariaDB and prepares it as TorMySQL's CI does (database
   ``test``, a table ``test`` with one row);
3. runs the tests with ``import tormysql`` resolving to ``tornpool.tormysql``
   (a pytest plugin puts the facade's modules under TorMySQL's names before
   the tests are imported; the tests' one import of a TorMySQL internal,
   ``tormysql.util.py3``, gets ``True``);
4. with ``--upstream``, runs them again against the TorMySQL installed from
   PyPI (``bash scripts/dev.sh setup bench`` installs 0.4.3) and compares the
   outcomes test by test.

``tests/test_unstable_connection.py`` needs TorMySQL's ``sevent`` proxy; it
runs when ``sevent`` imports and is left out otherwise (saying so).
tornpool's own port of those scenarios, through ``tornpool.testing.FaultProxy``,
is ``tests/test_tormysql_unstable.py``.

It exits non-zero if a test fails against the facade.  The repository is
``--repo`` (a clone or a bare mirror), ``$TORMYSQL_REPO``, or a bare clone
made on first use in ``~/.cache/tornpool/TorMySQL.git``.

This file is also the pytest plugin of those runs (``-p tormysql_suite``);
the plugin part only acts when ``TORMYSQL_SUITE_TARGET`` is ``facade``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import upstream_repo  # scripts/, beside this file

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
UPSTREAM = "https://github.com/snower/TorMySQL.git"
TARGET_ENV = "TORMYSQL_SUITE_TARGET"
REPORT_ENV = "TORMYSQL_SUITE_REPORT"
#: Failures that come from the server, not the facade: test id -> (text the
#: failure must contain, why).  Anything else that fails is a failure.
SERVER_DIFFERENCES = {
    "tests/test_charset.py::TestLocale::test": (
        "utf8mb3", "MariaDB >= 10.6 reports the charset utf8 as utf8mb3"),
}
#: TorMySQL's CI (``.travis.yml``) prepares its server this way.
SERVER_SETUP = [
    "CREATE DATABASE IF NOT EXISTS test",
    "CREATE TABLE IF NOT EXISTS test.test (id INT, data VARCHAR(100))",
    "INSERT INTO test.test (id, data) VALUES (1, 'test')",
]


# -- the pytest plugin ---------------------------------------------------------------


def _alias_facade() -> None:
    facade = importlib.import_module("tornpool.tormysql")
    sys.modules["tormysql"] = facade
    for name in ("client", "cursor", "helpers", "log", "pool"):
        sys.modules["tormysql." + name] = importlib.import_module("tornpool.tormysql." + name)
    util = types.ModuleType("tormysql.util")
    util.py3 = True  # type: ignore[attr-defined]
    sys.modules["tormysql.util"] = util


_outcomes: dict[str, str] = {}
_messages: dict[str, str] = {}


def pytest_configure(config: Any) -> None:
    if os.environ.get(TARGET_ENV) == "facade":
        _alias_facade()


def pytest_runtest_logreport(report: Any) -> None:
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome
            if report.outcome == "failed":
                _messages[report.nodeid] = str(report.longrepr)[-2000:]


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "error"
        _messages[report.nodeid] = str(report.longrepr)[-2000:]


def pytest_unconfigure(config: Any) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).write_text(json.dumps({"outcomes": _outcomes, "messages": _messages},
                                         indent=1, sort_keys=True))


# -- the driver ----------------------------------------------------------------------


def log(msg: str) -> None:
    print("[tormysql-suite] " + msg, flush=True)


def find_repo(given: str | None) -> Path:
    return upstream_repo.find_repo(given, "TORMYSQL_REPO", "TorMySQL", UPSTREAM, log)


def prepare_tree(repo: Path, ref: str, dest: Path) -> None:
    archive = subprocess.run(["git", f"--git-dir={repo / '.git'}" if (repo / ".git").exists()
                              else f"--git-dir={repo}", "archive", ref, "tests"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "pytest.ini").write_text("[pytest]\n")


def start_server() -> Any:
    import pymysql

    from tornpool.testing import MariaDBServer

    srv = MariaDBServer().start()
    conn = pymysql.connect(**srv.connect_kwargs(unix_socket=True))
    with conn.cursor() as cur:
        for sql in SERVER_SETUP:
            cur.execute(sql)
    conn.commit()
    conn.close()
    return srv


def run(tree: Path, target: str, srv: Any, extra: list[str]) -> dict[str, Any]:
    """Each test file in a process of its own, as TorMySQL's ``run-tests``
    does (its asyncio tests need a fresh default event loop)."""
    env = dict(os.environ, MYSQL_HOST=srv.host, MYSQL_PORT=str(srv.port), MYSQL_USER="root",
               MYSQL_PASSWD="", MYSQL_DB="test", MYSQL_CHARSET="utf8", MYSQL_POOL="20")
    env[TARGET_ENV] = target
    env["PYTHONPATH"] = os.pathsep.join([str(SCRIPTS), str(tree), env.get("PYTHONPATH", "")])
    merged: dict[str, Any] = {"outcomes": {}, "messages": {}}
    for path in sorted((tree / "tests").glob("test_*.py")):
        name = "tests/" + path.name
        if name == "tests/test_unstable_connection.py" and importlib.util.find_spec("sevent") is None:
            continue
        report = tree / f"outcomes-{target}-{path.stem}.json"
        env[REPORT_ENV] = str(report)
        cmd = [sys.executable, "-m", "pytest", "-p", "tormysql_suite", "-p", "no:cacheprovider",
               "-o", "faulthandler_timeout=60", "-q", "-W", "ignore::DeprecationWarning", name]
        log(f"{target}: {name}")
        subprocess.run(cmd + extra, cwd=tree, env=env, check=False)
        if report.exists():
            got = json.loads(report.read_text())
            merged["outcomes"].update(got["outcomes"])
            merged["messages"].update(got["messages"])
        else:
            merged["outcomes"][name] = "error (no report: pytest did not start)"
    return merged


def tally(outcomes: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing ran"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", help="TorMySQL's repository (clone or bare mirror)")
    ap.add_argument("--ref", default="HEAD", help="commit or tag to take tests/ from")
    ap.add_argument("--upstream", action="store_true",
                    help="also run against the TorMySQL installed here, and compare")
    ap.add_argument("-k", dest="keyword", help="pytest -k expression")
    args = ap.parse_args()
    extra = ["-k", args.keyword] if args.keyword else []
    if importlib.util.find_spec("sevent") is None:
        log("sevent is not installed: tests/test_unstable_connection.py is left out "
            "(tornpool's port of it is tests/test_tormysql_unstable.py)")
    repo = find_repo(args.repo)
    with tempfile.TemporaryDirectory(prefix="tornpool-tormysql-suite-") as tmp:
        tree = Path(tmp)
        prepare_tree(repo, args.ref, tree)
        results: dict[str, dict[str, Any]] = {}
        targets = ["facade"] + (["upstream"] if args.upstream else [])
        for target in targets:
            srv = start_server()
            try:
                results[target] = run(tree, target, srv, extra)
            finally:
                srv.stop()
    for target in targets:
        log(f"{target}: {tally(results[target]['outcomes'])}")
    if args.upstream:
        facade, upstream = results["facade"]["outcomes"], results["upstream"]["outcomes"]
        broken = {n for n, o in upstream.items() if "::" not in n and o == "error"}
        for nodeid in sorted(set(facade) | set(upstream)):
            if nodeid.split("::")[0] in broken:
                continue  # the module did not import upstream: said once below
            if facade.get(nodeid) != upstream.get(nodeid):
                log(f"differs: {nodeid}: facade {facade.get(nodeid)}, upstream {upstream.get(nodeid)}")
        for nodeid, message in sorted(results["upstream"]["messages"].items()):
            last = [line for line in message.splitlines() if line.startswith("E ")][-1:]
            log(f"upstream {nodeid}: {last[0][1:].strip() if last else message[-200:]}")
    failed = []
    for nodeid, outcome in sorted(results["facade"]["outcomes"].items()):
        if outcome in ("passed", "skipped"):
            continue
        known = SERVER_DIFFERENCES.get(nodeid)
        if known and known[0] in results["facade"]["messages"].get(nodeid, ""):
            log(f"failed as expected against this server: {nodeid} ({known[1]})")
            continue
        failed.append(nodeid)
        log(f"FAILED against the facade: {nodeid}")
    if not results["facade"]["outcomes"]:
        log("no test ran against the facade")
        return 1
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
