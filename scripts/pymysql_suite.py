#!/usr/bin/env python3
"""PyMySQL's own test suite, through greentor_compat's bridge and without it.

    python scripts/pymysql_suite.py [--pymysql 1.1.1] [--pymysql installed] [--repo PATH] [-k EXPR]

For each PyMySQL version (default: both ends of setup.py's range -- 1.1.1 and
the version installed here, each in a virtualenv of its own) this

1. takes ``pymysql/tests`` from PyMySQL's git repository at that version's tag
   (or the newest tag before it, said so in the report) into a scratch
   directory, beside a copy of the *installed* PyMySQL package, so the tests
   run against the code that is installed -- nothing of PyMySQL is copied into
   this repository;
2. starts a throwaway MariaDB set up as PyMySQL's CI sets up its servers
   (databases ``test1``/``test2``, user ``test2``, ``local_infile``, the
   ed25519 plugin; TLS on, so PyMySQL 1.2 uses it by default) -- a fresh one
   for each run;
3. runs the suite twice: **plain** (PyMySQL as it is) and **green**
   (``greentor_compat.mysql.patch_pymysql()`` applied before the test modules
   are imported, and every test -- ``setUp``, body, ``tearDown``, cleanups --
   run inside a ``greentor_compat.green`` task on a running Tornado IOLoop);
4. compares the outcomes test by test and checks that the loop had control
   while the green run read from the server: every wait for server bytes on
   the bridge is counted and timed, so is every read on a blocking socket made
   while a test ran, and a 1 ms loop timer counts how often the loop ran it
   while a bridge wait was pending.

It exits non-zero if the outcome of any test differs, if the green run never
waited on the bridge, if a test read from a blocking socket without being one
of the cases listed in ``BLOCKING_EXPECTED`` (with the reason), or if a test
that spent 50 ms or more waiting on the bridge never saw that timer run.

The repository is ``--repo`` (a clone or a bare mirror), ``$PYMYSQL_REPO``,
or a bare clone made on first use in ``~/.cache/tornpool/PyMySQL.git``.
Each version gets a virtualenv of its own (PyMySQL, tornado, greenlet, pytest,
cryptography, PyNaCl) under ``$TMPDIR/tornpool-pymysql-suite/``;
``--pymysql installed`` uses this interpreter instead.

This file is also the pytest plugin of those runs (``-p pymysql_suite``);
the plugin part only acts when ``GREENTOR_SUITE_MODE`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import upstream_repo  # scripts/, beside this file

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
MODE_ENV = "GREENTOR_SUITE_MODE"
#: Set by ``--control``: the green run leaves PyMySQL unpatched (blocking).
CONTROL_ENV = "GREENTOR_SUITE_CONTROL"
OUT_ENV = "GREENTOR_SUITE_OUT"
UPSTREAM = "https://github.com/PyMySQL/PyMySQL.git"

#: Tests that read from a blocking socket in the green run, and why that is
#: right (substring of the node id -> reason).
BLOCKING_EXPECTED = {
    "test_defer_connect": "the test hands PyMySQL a blocking socket it made itself (connect(sock))",
}

# What PyMySQL's CI runs on its servers (ci/docker-entrypoint-initdb.d), for MariaDB.
SERVER_SETUP = [
    "CREATE DATABASE test1 DEFAULT CHARACTER SET utf8mb4",
    "CREATE DATABASE test2 DEFAULT CHARACTER SET utf8mb4",
    "CREATE USER test2 IDENTIFIED BY 'some password'",
    "GRANT ALL ON test2.* TO test2",
    "CREATE USER test2@localhost IDENTIFIED BY 'some password'",
    "GRANT ALL ON test2.* TO test2@localhost",
    'INSTALL SONAME "auth_ed25519"',
    'CREATE FUNCTION ed25519_password RETURNS STRING SONAME "auth_ed25519.so"',
]


# ---------------------------------------------------------------------------
# The pytest plugin (runs inside the suite's interpreter)
# ---------------------------------------------------------------------------

class _Probe:
    """Counters for the test that runs now."""

    def __init__(self) -> None:
        self.bridge_waits = 0
        self.blocking_reads = 0
        self.ticks = 0
        #: bridge waits pending now, seconds spent in them, loop-timer turns
        #: while at least one was pending
        self.pending = 0
        self.wait_s = 0.0
        self.ticks_waiting = 0
        self.active = False

    def reset(self) -> None:
        self.bridge_waits = self.blocking_reads = self.ticks = self.ticks_waiting = 0
        self.pending = 0
        self.wait_s = 0.0


_probe = _Probe()
_results: dict[str, dict[str, Any]] = {}
_io_loop: Any = None


def _instrument() -> None:
    """Count bridge waits and blocking socket reads (this process only)."""
    import socket

    from tornpool.wire import Wire

    wire_wait = Wire.wait

    def counting_wait(self: Any, need: int) -> Any:
        fut = wire_wait(self, need)
        if _probe.active and not fut.done():
            probe = _probe
            probe.bridge_waits += 1
            probe.pending += 1
            started = time.monotonic()

            def finished(_: Any) -> None:
                probe.pending -= 1
                probe.wait_s += time.monotonic() - started

            fut.add_done_callback(finished)
        return fut

    Wire.wait = counting_wait  # type: ignore[method-assign]

    readinto = socket.SocketIO.readinto

    def counting_readinto(self: Any, b: Any) -> Any:
        if _probe.active:
            _probe.blocking_reads += 1
        return readinto(self, b)

    socket.SocketIO.readinto = counting_readinto  # type: ignore[method-assign]


def _green_runtest(item: Any) -> None:
    original = item.runtest
    from greentor_compat import green

    def runtest() -> None:
        probe = _probe
        probe.reset()
        timer: list[Any] = []

        def tick() -> None:
            probe.ticks += 1
            if probe.pending:
                probe.ticks_waiting += 1
            timer[:] = [_io_loop.call_later(0.001, tick)]

        async def drive() -> None:
            timer.append(_io_loop.call_later(0.001, tick))
            probe.active = True
            try:
                await green.spawn(original)
            finally:
                probe.active = False
                for handle in timer:
                    _io_loop.remove_timeout(handle)

        start = time.monotonic()
        try:
            _io_loop.run_sync(drive, timeout=300)
        finally:
            entry = _results.setdefault(item.nodeid, {})
            entry.update(bridge_waits=probe.bridge_waits, blocking_reads=probe.blocking_reads,
                         ticks=probe.ticks, ticks_waiting=probe.ticks_waiting,
                         wait_s=round(probe.wait_s, 3), seconds=round(time.monotonic() - start, 3))

    item.runtest = runtest


def pytest_configure(config: Any) -> None:
    global _io_loop
    mode = os.environ.get(MODE_ENV)
    if mode == "green":
        from tornado.ioloop import IOLoop

        from greentor_compat import mysql

        if not os.environ.get(CONTROL_ENV):
            mysql.patch_pymysql()  # before any test module (and its import-time connections)
        _instrument()
        _io_loop = IOLoop(make_current=False)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    if os.environ.get(MODE_ENV) == "green":
        for item in items:
            _green_runtest(item)


def pytest_runtest_logreport(report: Any) -> None:
    if not os.environ.get(MODE_ENV):
        return
    entry = _results.setdefault(report.nodeid, {})
    phases = entry.setdefault("phases", {})
    phases[report.when] = report.outcome
    if report.outcome == "failed":
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1]
        entry.setdefault("message", " ".join(text.split())[:300])
    elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        entry.setdefault("message", str(report.longrepr[2])[:300])


def pytest_unconfigure(config: Any) -> None:
    out = os.environ.get(OUT_ENV)
    if out and os.environ.get(MODE_ENV):
        Path(out).write_text(json.dumps(_results, indent=1, sort_keys=True))
    if _io_loop is not None:
        _io_loop.close(all_fds=True)


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------

def outcome_of(entry: dict[str, Any]) -> str:
    phases = entry.get("phases", {})
    if phases.get("setup") == "failed" or phases.get("teardown") == "failed":
        return "error"
    if phases.get("setup") == "skipped" or phases.get("call") == "skipped":
        return "skipped"
    return phases.get("call", "error")


def log(msg: str) -> None:
    print("[pymysql-suite] " + msg, flush=True)


def find_repo(given: str | None) -> Path:
    return upstream_repo.find_repo(given, "PYMYSQL_REPO", "PyMySQL", UPSTREAM, log)


def pick_tag(repo: Path, version: str) -> str:
    tags = subprocess.run(["git", "-C", str(repo), "tag"], check=True, capture_output=True,
                          text=True).stdout.split()

    def key(tag: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", tag)[:3])

    exact = "v" + version
    if exact in tags:
        return exact
    wanted = key(exact)
    older = [t for t in tags if re.fullmatch(r"v\d+\.\d+\.\d+", t) and key(t) <= wanted]
    if not older:
        raise SystemExit(f"no tag at or before v{version} in {repo}")
    return max(older, key=key)


def python_for(spec: str, work: Path) -> Path:
    """The interpreter whose PyMySQL is ``spec`` ("installed": this one)."""
    if spec == "installed":
        return Path(sys.executable)
    venv = work / ("venv-" + spec)
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"making a virtualenv with PyMySQL=={spec} in {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run([str(py), "-m", "pip", "install", "-q", f"PyMySQL=={spec}", "tornado>=6.5",
                              "greenlet>=3", "pytest>=8", "cryptography", "PyNaCl"],
                             capture_output=True, text=True)
        if pip.returncode:
            raise SystemExit(f"pip could not install PyMySQL=={spec}:\n{pip.stdout}{pip.stderr}")
    return py


def installed_pymysql(py: Path) -> tuple[str, Path]:
    out = subprocess.run(
        [str(py), "-c", "import pymysql, os; print(pymysql.VERSION_STRING); print(os.path.dirname(pymysql.__file__))"],
        check=True, capture_output=True, text=True).stdout.split("\n")
    return out[0].strip(), Path(out[1].strip())


def prepare_tree(repo: Path, tag: str, package: Path, dest: Path) -> None:
    """``dest/pymysql``: the installed package plus the tag's ``pymysql/tests``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(package, dest / "pymysql", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    archive = subprocess.run(["git", "-C", str(repo), "archive", tag, "pymysql/tests"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "pytest.ini").write_text("[pytest]\n")


def start_server() -> Any:
    import pymysql

    from tornpool.testing import MariaDBServer

    srv = MariaDBServer(tls=True, extra_args=["--local-infile=1"]).start()
    conn = pymysql.connect(**srv.connect_kwargs(unix_socket=True))
    with conn.cursor() as cur:
        for sql in SERVER_SETUP:
            cur.execute(sql)
    conn.close()
    return srv


def databases_json(srv: Any) -> list[dict[str, Any]]:
    # ci/docker.json of PyMySQL, pointed at this server
    return [
        {"host": srv.host, "port": srv.port, "user": "root", "password": "", "database": "test1",
         "use_unicode": True, "local_infile": True},
        {"host": srv.host, "port": srv.port, "user": "test2", "password": "some password",
         "database": "test2"},
        {"host": "localhost", "port": srv.port, "user": "test2", "password": "some password",
         "database": "test2", "unix_socket": srv.unix_socket},
    ]


def run_suite(py: Path, tree: Path, mode: str, extra: list[str],
              control: bool = False) -> tuple[dict[str, Any], float, str]:
    srv = start_server()
    try:
        (tree / "pymysql" / "tests" / "databases.json").write_text(json.dumps(databases_json(srv)))
        out = tree / f"results-{mode}.json"
        env = dict(os.environ)
        env[MODE_ENV] = mode
        env[OUT_ENV] = str(out)
        env["PYTHONPATH"] = os.pathsep.join([str(tree), str(ROOT), str(SCRIPTS)])
        env.pop("TORNPOOL_TEST_DSN", None)
        env.pop(CONTROL_ENV, None)
        if control:
            env[CONTROL_ENV] = "1"
        cmd = [str(py), "-m", "pytest", "-p", "pymysql_suite", "-p", "no:cacheprovider",
               "-p", "no:tornado", "-c", str(tree / "pytest.ini"), "--rootdir", str(tree), "-q",
               "-o", "console_output_style=classic", "pymysql/tests", *extra]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        took = time.monotonic() - start
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        if not out.exists():
            raise SystemExit(f"the {mode} run produced no results:\n{proc.stdout}\n{proc.stderr}")
        return json.loads(out.read_text()), took, tail
    finally:
        srv.stop()


def summarize(results: dict[str, Any]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for entry in results.values():
        counts[outcome_of(entry)] += 1
    return counts


def check_loop(green: dict[str, Any]) -> list[str]:
    problems = []
    total_waits = sum(e.get("bridge_waits", 0) for e in green.values())
    if total_waits == 0:
        problems.append("the green run never waited on the bridge: PyMySQL stayed blocking")
    for nodeid, e in sorted(green.items()):
        if e.get("blocking_reads") and not any(k in nodeid for k in BLOCKING_EXPECTED):
            problems.append(f"{nodeid}: {e['blocking_reads']} reads on a blocking socket while the test ran")
        if e.get("wait_s", 0) >= 0.05 and not e.get("ticks_waiting"):
            problems.append(f"{nodeid}: waited {e['wait_s']} s for the server on the bridge "
                            "but the loop's timer never ran meanwhile")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pymysql", action="append", metavar="VERSION|installed",
                        help="PyMySQL version to test, each in a virtualenv of its own; 'installed' "
                             "runs this interpreter's (repeatable; default: 1.1.1 and the version "
                             "installed here)")
    parser.add_argument("--repo", help="PyMySQL git repository (clone or bare mirror)")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "tornpool-pymysql-suite"),
                        help="scratch directory (virtualenvs, test trees, results)")
    parser.add_argument("--json", help="write the comparison here")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression (both runs)")
    parser.add_argument("--control", action="store_true",
                        help="negative control: green run WITHOUT patch_pymysql(); the loop check must fail")
    args = parser.parse_args()
    repo = find_repo(args.repo)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    extra = ["-k", args.keyword] if args.keyword else []
    report: dict[str, Any] = {}
    failed = False
    import pymysql

    for spec in args.pymysql or ["1.1.1", pymysql.VERSION_STRING]:
        py = python_for(spec, work)
        version, package = installed_pymysql(py)
        tag = pick_tag(repo, version)
        tree = work / ("tree-" + version)
        prepare_tree(repo, tag, package, tree)
        note = "" if tag == "v" + version else f" (no v{version} tag in the repository: tests of {tag})"
        log(f"PyMySQL {version} ({py}), tests from {tag}{note}")
        runs = {}
        for mode in ("plain", "green"):
            results, took, tail = run_suite(py, tree, mode, extra, control=args.control and mode == "green")
            runs[mode] = results
            counts = summarize(results)
            log(f"  {mode:5s}: {counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['skipped']} skipped, {counts['error']} errors in {took:.0f} s")
        plain, green = runs["plain"], runs["green"]
        differ = []
        for nodeid in sorted(set(plain) | set(green)):
            a = outcome_of(plain[nodeid]) if nodeid in plain else "absent"
            b = outcome_of(green[nodeid]) if nodeid in green else "absent"
            if a != b:
                differ.append({"test": nodeid, "plain": a, "green": b,
                               "plain_message": plain.get(nodeid, {}).get("message"),
                               "green_message": green.get(nodeid, {}).get("message")})
        not_passing = {n: (outcome_of(e), e.get("message")) for n, e in sorted(plain.items())
                       if outcome_of(e) != "passed"}
        problems = check_loop(green)
        waited = [n for n, e in green.items() if e.get("bridge_waits")]
        blocking = {n: e["blocking_reads"] for n, e in green.items() if e.get("blocking_reads")}
        log(f"  green run: {sum(e.get('bridge_waits', 0) for e in green.values())} waits on the bridge "
            f"in {len(waited)} of {len(green)} tests, "
            f"{sum(e.get('wait_s', 0) for e in green.values()):.1f} s in all; the 1 ms loop timer ran "
            f"{sum(e.get('ticks_waiting', 0) for e in green.values())} times during them")
        for nodeid, n in sorted(blocking.items()):
            why = next((r for k, r in BLOCKING_EXPECTED.items() if k in nodeid), "UNEXPECTED")
            log(f"  blocking reads: {nodeid}: {n} ({why})")
        for nodeid, (outcome, message) in not_passing.items():
            same = "same in both runs" if not any(d["test"] == nodeid for d in differ) else "DIFFERS"
            log(f"  not passing (plain): {nodeid}: {outcome}: {message} [{same}]")
        for d in differ:
            log(f"  DIFFERENT: {d['test']}: plain {d['plain']}, green {d['green']}: {d['green_message']}")
        for p in problems[:20]:
            log("  LOOP CHECK: " + p)
        if len(problems) > 20:
            log(f"  LOOP CHECK: ... and {len(problems) - 20} more")
        if args.control:
            log("  control run (no patch): the loop check " + ("caught it" if problems else "DID NOT catch it"))
            failed = failed or not problems
        elif differ or problems:
            failed = True
        report[version] = {
            "python": str(py), "tag": tag,
            "plain": summarize(plain), "green": summarize(green),
            "different": differ, "not_passing_plain": not_passing, "loop_problems": problems,
            "bridge_waits": sum(e.get("bridge_waits", 0) for e in green.values()),
            "tests_that_waited": len(waited), "blocking_reads": blocking,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, sort_keys=True))
    if args.control:
        log("RESULT: " + ("the loop check missed a blocking PyMySQL" if failed
                          else "the loop check fails a green run whose PyMySQL stayed blocking"))
    else:
        log("RESULT: " + ("outcomes differ or the loop check failed" if failed
                          else "same outcomes with and without the bridge; the loop ran during server reads"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
