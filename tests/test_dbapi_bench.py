"""bench/dbapi_bench.py and the writes suite of bench/sqlite_bench.py run end
to end on a tiny workload (the figures themselves are not checked: speed is
read from the benchmark, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "bench", "dbapi", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_dbapi_bench_measures_the_executor_pool_and_the_baseline(mariadb_dsn: str) -> None:
    out = _bench("--dsn", mariadb_dsn, "--placement", "unpinned", "--runs", "1", "--queries", "200",
                 "--concurrency", "20", "--size", "4", "--acquires", "50", "--scenarios", "select1",
                 "--pools", "dbapi-mysqlclient,mysqlclient-threads", "--no-save")
    for pool in ("dbapi-mysqlclient", "mysqlclient-threads"):
        assert re.search(r"\| SELECT 1 \| %s \| [\d,]+ \|" % pool, out), out
    assert re.search(r"- SELECT 1: dbapi-mysqlclient [\d.]+x the q/s of mysqlclient-threads "
                     r"\(target >= 0.9x\), max/p50 [\d.]+ \(target <= 3\): (met|NOT met)", out), out
    assert "failed" not in out


def test_dbapi_bench_compares_with_the_sqlite_proxy() -> None:
    out = _bench("--sqlite-only", "--runs", "1", "--sqlite-calls", "80")
    for contender in ("executor pool", "process proxy"):
        for workload in ("SELECT 1, 1 coroutine", "SELECT 1, 8 coroutines", "CTE ~1 ms, 8 coroutines"):
            assert re.search(r"\| %s \| %s \| [\d.]+ \| [\d,]+ \| [\d.]+ \|" % (
                re.escape(workload), contender), out), out


def test_dbapi_bench_measures_the_hand_off_alone() -> None:
    out = _bench("--overhead-only", "--runs", "2", "--overhead-calls", "2000")
    for contender in ("executor pool", "run_in_executor"):
        assert re.search(r"\| %s \| [\d,]+ \| [\d.]+ \| [\d.]+x \|" % contender, out), out


def test_sqlite_bench_writes_reports_throughput_latency_and_group_commit() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.sqlite_bench", "--rounds", "1",
                           "--seconds", "0.05", "--threads", "4", "--readers", "1",
                           "--only", "writes"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for sync in ("FULL", "NORMAL"):
        # throughput: six contenders, then the two ratios
        assert re.search(r"\| %s (\| \d+ ){6}\| [\d.]+x \| [\d.]+x \|" % sync, out), out
        # latency: p50 / p99 / max of the same six
        assert re.search(r"\| %s (\| [\d.]+ / [\d.]+ / \d+ ){6}\|" % sync, out), out
    assert ("FULL: writer process on, writer thread on; "
            "NORMAL: writer process on, writer thread off") in out
