"""Every bench suite, a handful of queries each, so that the benches cannot rot.

The suites run as documented (``python -m bench SUITE``) against the session
server, with a few queries each; the tests then read the results files they
wrote.  No figure is compared with a bound: speed is the benches' business,
not the tests'.  A peer that is not installed is skipped, and the test says
which; the bench itself must list it as unavailable with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import _stats  # noqa: E402

CORE_CLIENTS = {"tornpool": "tornpool", "tornpool-pure": "tornpool", "pymysql": "pymysql",
                "mysqlclient": "MySQLdb", "aiomysql": "aiomysql", "asyncmy": "asyncmy"}
POOLS = {"tornpool": "tornpool", "asyncmy": "asyncmy", "aiomysql": "aiomysql", "tormysql": "tormysql",
         "mysqlclient-threads": "MySQLdb"}
POOL_SCENARIOS = ("select1", "rows20", "sleep5ms")
CORE_QUERIES, CORE_FETCHES = 30, 1
POOL_ARGS = {"concurrency": 8, "size": 3, "queries": 40, "sleep_queries": 16, "acquires": 50}
FLOOR_QUERIES = 30


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _bench(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=180, env=env)
    assert proc.returncode == 0, f"bench {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _only_result(results: Path, suite: str) -> dict[str, Any]:
    files = sorted(results.glob(f"{suite}-*.json"))
    assert len(files) == 1, f"expected one {suite} results file, found {[f.name for f in files]}"
    doc: dict[str, Any] = json.loads(files[0].read_text())
    return doc


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, mariadb_dsn: str) -> dict[str, Any]:
    """Run every suite once against the session server; its results and output."""
    results = tmp_path_factory.mktemp("bench-results")
    common = ["--dsn", mariadb_dsn, "--runs", "1", "--results-dir", str(results)]
    out = {
        "core": _bench("core", *common, "--queries", str(CORE_QUERIES), "--fetches", str(CORE_FETCHES)),
        "pool": _bench("pool", *common, *[f"--{k.replace('_', '-')}={v}" for k, v in POOL_ARGS.items()]),
        "codec": _bench("codec", *common, "--repeat", "1"),
        "floor": _bench("floor", *common, "--queries", str(FLOOR_QUERIES)),
    }
    return {"dir": results, "stdout": out,
            "docs": {suite: _only_result(results, suite) for suite in out}}


def _figures(doc: dict[str, Any], client: str) -> dict[str, Any]:
    assert doc["placement"] == "external"
    assert not doc["failures"], doc["failures"]
    (only_round,) = doc["rounds"]
    got: dict[str, Any] = only_round["results"][client]
    return got


def _skip_missing(doc: dict[str, Any], client: str, module: str) -> None:
    if not _installed(module):
        assert "not installed" in doc["unavailable"][client]
        pytest.skip(f"{client} not installed ({module}): {doc['unavailable'][client]}")


@pytest.mark.parametrize("client", list(CORE_CLIENTS))
def test_core_measures_every_installed_client(ran: dict[str, Any], client: str) -> None:
    doc = ran["docs"]["core"]
    _skip_missing(doc, client, CORE_CLIENTS[client])
    fig = _figures(doc, client)
    assert fig["select1"]["units"] == CORE_QUERIES
    assert fig["fetch"]["units"] == 10_000 * CORE_FETCHES  # every row of the 11-column table came back
    assert fig["select1"]["cpu_us"] > 0 and fig["fetch"]["rows_per_s"] > 0
    if client == "tornpool-pure":
        assert fig["codec"] == "python"
    elif client == "tornpool":
        import tornpool.codec

        assert fig["codec"] == ("c" if "c" in tornpool.codec.available() else "python")
    assert f"| {client} | " in ran["stdout"]["core"]


@pytest.mark.parametrize("pool", list(POOLS))
def test_pool_measures_every_installed_pool(ran: dict[str, Any], pool: str) -> None:
    doc = ran["docs"]["pool"]
    _skip_missing(doc, pool, POOLS[pool])
    assert pool not in doc["unavailable"], doc["unavailable"].get(pool)
    fig = _figures(doc, pool)
    per = POOL_ARGS["concurrency"]
    for scenario in POOL_SCENARIOS:
        s = fig[scenario]
        wanted = POOL_ARGS["sleep_queries" if scenario == "sleep5ms" else "queries"]
        assert s["units"] == wanted // per * per
        assert 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
        assert s["qps"] > 0 and s["cpu_us"] > 0
        # the longest stretch without a completion is no longer than the
        # slowest request (the one that ended it started at an earlier one)
        assert 0 < s["pause_ms"] <= s["max_ms"] + 1e-6
        assert 0 <= s["gc_full"] <= s["gc_runs"] and s["gc_max_ms"] >= 0
    # a request of SELECT SLEEP(0.005) cannot take less than the sleep
    assert fig["sleep5ms"]["p50_ms"] >= 5.0
    assert fig["acquire"]["cpu_us"] > 0
    assert f"| {pool} | " in ran["stdout"]["pool"]
    assert "longest pause ms" in ran["stdout"]["pool"]


def test_codec_checks_and_times_every_decoder(ran: dict[str, Any]) -> None:
    import tornpool.codec

    doc = ran["docs"]["codec"]
    assert doc["capture"]["rows"] == 10_000 and doc["capture"]["columns"] == 11
    fig = doc["rounds"][0]["results"]
    expected = {"pure", "PyMySQL"} | ({"C"} if "c" in tornpool.codec.available() else set())
    assert set(fig) == expected
    assert all(f["cpu_us"] > 0 for f in fig.values())


def test_floor_runs_every_layer(ran: dict[str, Any]) -> None:
    doc = ran["docs"]["floor"]
    fig = doc["rounds"][0]["results"]
    for layer in ("blocking socket", "PyMySQL", "asyncio Protocol", "asyncio BufferedProtocol",
                  "IOStream.read_into", "tornpool", "IOStream.read_into x10", "tornpool x10",
                  "tornpool Pool, 100 coroutines"):
        assert fig[layer]["queries"] >= FLOOR_QUERIES, layer
        assert fig[layer]["cpu_us"] > 0, layer
    # a layer that cannot run here (a peer not installed) is listed with the reason
    assert set(fig) | set(doc["unavailable"]) == set(doc["clients"])
    assert not set(fig) & set(doc["unavailable"])


def test_results_record_the_machine_and_versions(ran: dict[str, Any]) -> None:
    for suite, doc in ran["docs"].items():
        m, v = doc["machine"], doc["versions"]
        assert m["nproc"] == os.cpu_count() and m["cpu_model"], suite
        assert len(m["loadavg_before"]) == 3 and len(m["loadavg_after"]) == 3, suite
        assert v["python"] == sys.version.split()[0] and v["tornado"] and v["tornpool"], suite
        assert "MariaDB" in v["server"] or v["server"][0].isdigit(), suite
        assert doc["command"].startswith(f"python -m bench {suite} --dsn "), doc["command"]


def test_report_renders_tables_and_plots(ran: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "docs-bench"
    listed = _bench("report", "--results-dir", str(ran["dir"]), "--out", str(out)).split()
    for suite in ("core", "pool", "codec", "floor"):
        page = (out / f"{suite}.md").read_text()
        assert "## external" in page and f"`bench {suite}`, placement **external**" in page
        assert (out / "data" / sorted(ran["dir"].glob(f"{suite}-*.json"))[0].name).is_file()
    assert "tornpool x asyncmy" in (out / "core.md").read_text()  # the issue targets
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(["core-select1-cpu.png", "core-fetch.png", "pool-qps.png", "pool-cpu.png",
                           "pool-latency-external.png", "codec-cpu.png", "floor-cpu.png"])
    for png in pngs:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(listed) == {str(p) for p in out.rglob("*") if p.is_file()}


def test_placements_start_and_place_their_own_servers(tmp_path: Path) -> None:
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to pin")
    env = {k: v for k, v in os.environ.items() if k != "TORNPOOL_TEST_DSN"}
    _bench("floor", "--placement", "both", "--runs", "1", "--queries", "10", "--results-dir", str(tmp_path),
           env=env)
    cpus = sorted(os.sched_getaffinity(0))
    pinned = _only_result(tmp_path, "floor-pinned")["machine"]
    unpinned = _only_result(tmp_path, "floor-unpinned")["machine"]
    assert (pinned["server_cpus"], pinned["client_cpus"]) == ([cpus[0]], [cpus[-1]])
    assert unpinned["server_cpus"] == unpinned["client_cpus"] == cpus


def test_ratios_are_medians_of_per_round_ratios() -> None:
    rounds = [{"a": {"x": 2.0}, "b": {"x": 1.0}},   # a/b = 2
              {"a": {"x": 9.0}, "b": {"x": 10.0}},  # 0.9
              {"a": {"x": 3.0}, "b": {"x": 2.0}},   # 1.5
              {"a": {"x": 5.0}}]                     # no b this round: left out
    assert _stats.median_ratio(rounds, "a", "b", ("x",)) == 1.5
    # the ratio of the medians, 4.0 / 2.0, would pair figures of different rounds
    assert _stats.median_over_rounds(rounds, "a", ("x",)) == 4.0
    assert _stats.median_over_rounds(rounds, "b", ("x",)) == 2.0
    assert _stats.rotated(["p", "q", "r"], 4) == ["q", "r", "p"]
