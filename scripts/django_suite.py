#!/usr/bin/env python3
"""Django's own test suite on greentor_compat.django's backend, and on Django's
stock MySQL backend for comparison.

    python scripts/django_suite.py [LABEL ...] [--dsn mysql://...] [--only ours|stock] [--cache DIR]
    bash scripts/dev.sh django-suite [same arguments]

1. Takes the sdist of the Django installed here from the package index
   (``pip download --no-binary :all: --no-deps Django==X``) into
   ``~/.cache/tornpool/django/`` (``--cache``), once, and unpacks it there:
   its ``tests/`` directory holds ``runtests.py`` and the suite.  Nothing of
   Django is copied into this repository.
2. Starts a throwaway MariaDB (``tornpool.testing.MariaDBServer``) unless
   ``--dsn`` names a server (its user needs to create databases).
3. Runs ``runtests.py --parallel 1 LABEL ...`` twice, each in a process of its
   own, with a generated settings module (aliases ``default`` and ``other``):

   * **stock** -- ``ENGINE: django.db.backends.mysql`` on PyMySQL
     (``pymysql.install_as_MySQLdb()`` before ``runtests.py`` starts), run
     as Django runs it;
   * **ours** -- ``ENGINE: greentor_compat.django.mysql`` with
     ``OPTIONS={"pool": {"max_size": 20}}``, mysqlclient made unimportable
     (so the backend's own PyMySQL stand-in is what Django imports), and the
     whole run -- ``runtests.py`` itself -- inside a ``tornpool.green.spawn``
     greenlet on a running Tornado/asyncio loop; a loop timer counts the
     loop's turns to show it kept running.

4. Records every test's outcome (``TEST_RUNNER`` is :class:`RecordingRunner`,
   below), prints the pass/fail/error/skip counts of both runs, and lists
   each test whose outcome differs with the first line of its error, and
   :data:`EXPLAINED` -- why, where the reason is known.  The report goes to
   ``build/django-suite/`` (``report.md``, ``results.json``).

Default labels: ``basic transactions select_for_update backends get_or_create
update delete transaction_hooks queries model_fields expressions aggregation
schema``.  Exits non-zero if a test differs that :data:`EXPLAINED` does not
account for.

This file is also the module the runs import for their ``TEST_RUNNER``
(``django_suite.RecordingRunner``; ``scripts/`` is on their path).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
OUT_ENV = "TORNPOOL_DJANGO_SUITE_OUT"
DEFAULT_LABELS = ["basic", "transactions", "select_for_update", "backends", "get_or_create", "update",
                  "delete", "transaction_hooks", "queries", "model_fields", "expressions", "aggregation",
                  "schema"]

#: Why a test's outcome legitimately differs in the ours run: a substring of
#: the test id or of its error's first line -> the reason.  Filled from the
#: runs recorded in docs/django.md.
EXPLAINED: dict[str, str] = {
    "You cannot use AsyncToSync in the same thread as an async event loop":
        "an async test: Django runs it through asgiref's async_to_sync, which refuses to start "
        "while an event loop runs in the thread -- and the ours run is a greenlet on a running loop",
    "import of MySQLdb halted":
        "the test imports MySQLdb itself; the ours run has no mysqlclient (the backend's PyMySQL "
        "stand-in is in sys.modules only while Django's backend modules are imported)",
}


# -- the runs' side: a test runner that records outcomes -------------------------------


class RecordingResult(unittest.TextTestResult):
    """Django's text result, also keeping ``test id -> (outcome, detail)``."""

    outcomes: dict[str, tuple[str, str]]

    def startTestRun(self) -> None:
        self.outcomes = {}
        super().startTestRun()

    def _keep(self, test: Any, outcome: str, detail: str = "") -> None:
        self.outcomes[test.id()] = (outcome, detail)

    def _first_line(self, err: Any) -> str:
        exc = err[1]
        text = "%s: %s" % (type(exc).__name__, exc)
        return text.splitlines()[0][:300] if text else ""

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self.outcomes.setdefault(test.id(), ("pass", ""))

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._keep(test, "fail", self._first_line(err))

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._keep(test, "error", self._first_line(err))

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._keep(test, "skip", reason[:200])

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._keep(test, "xfail")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._keep(test, "xpass")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._keep(test, "fail" if failed else "error", self._first_line(err))

    def stopTestRun(self) -> None:
        super().stopTestRun()
        out = os.environ.get(OUT_ENV)
        if out:
            Path(out).write_text(json.dumps({k: list(v) for k, v in self.outcomes.items()}, indent=0))


def _django_runner_base() -> Any:
    from django.test.runner import DiscoverRunner

    return DiscoverRunner


def __getattr__(name: str) -> Any:
    """``RecordingRunner`` is made on first use, so that importing this
    script does not import Django."""
    if name != "RecordingRunner":
        raise AttributeError(name)
    base = _django_runner_base()

    class RecordingRunner(base):  # type: ignore[misc, valid-type]
        def get_resultclass(self) -> Any:
            return RecordingResult

    globals()["RecordingRunner"] = RecordingRunner
    return RecordingRunner


# -- the inner process: runtests.py, plain or in a greenlet on a running loop -------------


def inner(mode: str, tests_dir: str, argv: list[str]) -> int:
    import runpy

    sys.path[:0] = [tests_dir, str(SCRIPTS), str(ROOT)]
    os.chdir(tests_dir)
    sys.argv = ["runtests.py", *argv]

    def run() -> int:
        try:
            runpy.run_path(os.path.join(tests_dir, "runtests.py"), run_name="__main__")
        except SystemExit as exc:
            return int(bool(exc.code)) if not isinstance(exc.code, int) else exc.code
        return 0

    if mode == "stock":
        # before runtests.py imports MySQLdb (it does at its top): PyMySQL is
        # MySQLdb for the whole process, as Django's docs suggest for PyMySQL
        import pymysql

        if pymysql.version_info < (2, 2, 1):  # what Django 6.0 asks of MySQLdb (5.2: 1.4.3)
            pymysql.version_info, pymysql.__version__ = (2, 2, 1, "final", 0), "2.2.1"
        pymysql.install_as_MySQLdb()
        return run()

    import asyncio

    from tornado.ioloop import IOLoop
    from tornpool import green as tgreen

    sys.modules["MySQLdb"] = None  # type: ignore[assignment]  # as on a machine without mysqlclient

    async def main() -> int:
        loop = IOLoop.current()
        turns = 0

        def tick() -> None:
            nonlocal turns
            turns += 1

        from tornado.ioloop import PeriodicCallback

        ticker = PeriodicCallback(tick, 10)
        ticker.start()
        started = time.monotonic()
        try:
            code: int = await tgreen.spawn(run)
        finally:
            ticker.stop()
        elapsed = time.monotonic() - started
        print("[django-suite] ours: runtests.py ran in a tornpool greenlet on %r; the loop's 10 ms "
              "timer ran %d times in %.0f s" % (type(loop).__name__, turns, elapsed), file=sys.stderr)
        return code

    return asyncio.run(main())


# -- the outer process --------------------------------------------------------------------


def log(msg: str) -> None:
    print("[django-suite] %s" % msg, file=sys.stderr, flush=True)


def django_tests(cache: Path) -> tuple[str, Path]:
    """The unpacked ``tests/`` of the installed Django's sdist."""
    import django

    version = django.__version__
    tests = cache / f"django-{version}" / "tests"
    if (tests / "runtests.py").exists():
        return version, tests
    cache.mkdir(parents=True, exist_ok=True)
    log(f"downloading the Django {version} sdist into {cache}")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                    f"Django=={version}", "-d", str(cache)], check=True)
    archives = sorted(cache.glob(f"[Dd]jango-{version}.tar.gz"))
    if not archives:
        raise SystemExit(f"pip download left no Django-{version}.tar.gz in {cache}")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(cache, filter="data")
    if not (tests / "runtests.py").exists():
        raise SystemExit(f"{archives[0]} has no tests/runtests.py")
    return version, tests


SETTINGS = '''\
# Generated by scripts/django_suite.py ({mode} run).{prelude}
_BASE = {{"HOST": {host!r}, "PORT": {port!r}, "USER": {user!r}, "PASSWORD": {password!r}}}
DATABASES = {{
    "default": {{**_BASE, "ENGINE": {engine!r}, "NAME": "django_suite_default"{options}}},
    "other": {{**_BASE, "ENGINE": {engine!r}, "NAME": "django_suite_other"{options}}},
}}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
TEST_RUNNER = "django_suite.RecordingRunner"
'''

def write_settings(where: Path, mode: str, server: dict[str, Any]) -> str:
    name = f"django_suite_settings_{mode}"
    if mode == "stock":
        text = SETTINGS.format(mode=mode, prelude="", engine="django.db.backends.mysql",
                               options="", **server)
    else:
        text = SETTINGS.format(mode=mode, prelude="", engine="greentor_compat.django.mysql",
                               options=', "OPTIONS": {"pool": {"max_size": 20}}', **server)
    (where / f"{name}.py").write_text(text)
    return name


def run_one(mode: str, tests: Path, settings_dir: Path, settings: str, labels: list[str],
            extra: list[str], out_dir: Path) -> dict[str, list[str]]:
    out = out_dir / f"results-{mode}.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(settings_dir), str(SCRIPTS), str(ROOT)]))
    env[OUT_ENV] = str(out)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--inner", mode, str(tests), "--",
           "--settings", settings, "--parallel", "1", "--noinput", "-v", "1", *extra, *labels]
    log_path = out_dir / f"{mode}.log"
    log(f"{mode}: runtests.py {' '.join(labels)} (log: {log_path})")
    started = time.monotonic()
    with open(log_path, "w") as fh:
        code = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    log(f"{mode}: exit {code} after {time.monotonic() - started:.0f} s")
    if not out.exists():
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"the {mode} run recorded no results; its log ends:\n{tail}")
    results: dict[str, list[str]] = json.loads(out.read_text())
    return results


def counts(results: dict[str, list[str]]) -> dict[str, int]:
    tally = {"tests": len(results), "pass": 0, "fail": 0, "error": 0, "skip": 0, "xfail": 0, "xpass": 0}
    for outcome, _ in results.values():
        tally[outcome] += 1
    return tally


def explain(test_id: str, *details: str) -> str | None:
    for key, why in EXPLAINED.items():
        if key in test_id or any(key in d for d in details):
            return why
    return None


def compare(ours: dict[str, list[str]], stock: dict[str, list[str]]) -> list[dict[str, Any]]:
    differ = []
    for test_id in sorted(set(ours) | set(stock)):
        a, b = ours.get(test_id, ["absent", ""]), stock.get(test_id, ["absent", ""])
        if a[0] != b[0]:
            differ.append({"test": test_id, "ours": a[0], "ours_detail": a[1], "stock": b[0],
                           "stock_detail": b[1], "why": explain(test_id, a[1], b[1])})
    return differ


def report(version: str, labels: list[str], runs: dict[str, dict[str, list[str]]],
           differ: list[dict[str, Any]]) -> str:
    lines = [f"# Django {version} suite: greentor_compat.django.mysql vs the stock backend", "",
             "Labels: " + " ".join(labels), "", "| run | tests | pass | fail | error | skip | xfail | xpass |",
             "|---|---|---|---|---|---|---|---|"]
    for mode, results in runs.items():
        c = counts(results)
        lines.append(f"| {mode} | {c['tests']} | {c['pass']} | {c['fail']} | {c['error']} | {c['skip']} "
                     f"| {c['xfail']} | {c['xpass']} |")
    lines += ["", f"Tests whose outcome differs: {len(differ)}", ""]
    for d in differ:
        lines.append(f"* `{d['test']}`: ours **{d['ours']}**, stock **{d['stock']}**")
        detail = d["ours_detail"] or d["stock_detail"]
        if detail:
            lines.append(f"  - {detail}")
        lines.append(f"  - why: {d['why'] or 'NOT EXPLAINED'}")
    return "\n".join(lines) + "\n"


def server_params(dsn: str) -> dict[str, Any]:
    from tornpool import parse_dsn

    kw = parse_dsn(dsn)
    return {"host": kw.get("unix_socket") or kw.get("host") or "127.0.0.1", "port": str(kw.get("port") or ""),
            "user": kw.get("user") or "root", "password": kw.get("password") or ""}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        mode, tests_dir = sys.argv[2], sys.argv[3]
        return inner(mode, tests_dir, sys.argv[5:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", nargs="*", default=DEFAULT_LABELS)
    parser.add_argument("--dsn", default=None, help="a server to use instead of a throwaway one")
    parser.add_argument("--only", choices=["ours", "stock"])
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "tornpool" / "django")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "django-suite")
    parser.add_argument("-k", action="append", default=[], help="runtests.py -k (repeatable)")
    args = parser.parse_args()
    version, tests = django_tests(args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    extra = [x for k in args.k for x in ("-k", k)]
    modes = [args.only] if args.only else ["ours", "stock"]
    with tempfile.TemporaryDirectory(prefix="tornpool-django-suite-") as scratch:
        if args.dsn:
            server_cm: Any = None
            dsn = args.dsn
        else:
            from tornpool.testing import MariaDBServer

            log("starting a throwaway MariaDB")
            server_cm = MariaDBServer().start()
            dsn = server_cm.dsn
        try:
            server = server_params(dsn)
            runs = {}
            for mode in modes:
                settings = write_settings(Path(scratch), mode, server)
                runs[mode] = run_one(mode, tests, Path(scratch), settings, args.labels, extra, args.out)
        finally:
            if server_cm is not None:
                server_cm.stop()
    differ = compare(runs["ours"], runs["stock"]) if len(runs) == 2 else []
    text = report(version, args.labels, runs, differ)
    (args.out / "report.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({"version": version, "labels": args.labels,
                                                       "counts": {m: counts(r) for m, r in runs.items()},
                                                       "differ": differ}, indent=1))
    print(text)
    unexplained = [d for d in differ if d["why"] is None]
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
