"""Results files: one JSON document per (suite, placement) run.

``bench/results/<suite>-<placement>-<UTC timestamp>.json`` holds the options,
the raw per-round figures, the summary the tables are printed from, and what
the machine was doing: CPU model, CPU count and affinities, load average and
CPU steal around the run, a bare-loop speed probe before and after (this VM's
speed moves within the hour), and the versions of Python, Tornado, tornpool,
every driver and the server.  ``bench/results/`` stays out of git;
``bench report`` copies what it renders into ``docs/bench/data/``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

DISTRIBUTIONS = ("tornpool", "tornado", "greenlet", "PyMySQL", "mysqlclient", "aiomysql", "asyncmy",
                 "tormysql", "psutil", "matplotlib")

_NAME = re.compile(r"^(?P<suite>[a-z0-9]+)-(?P<placement>[a-z]+)-(?P<stamp>\d{8}T\d{6}Z)\.json$")


def utc_stamp() -> str:
    """Now, as ``20261202T170501Z``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str | None]:
    """Installed versions of Python and every distribution the benches use
    (``None``: not installed)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0],
                                  "implementation": platform.python_implementation()}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["tornpool commit"] = tornpool_commit()
    try:
        import tornpool.codec

        out["tornpool codec (default)"] = str(tornpool.codec.IMPL)
    except ImportError:
        pass
    return out


def tornpool_commit() -> str | None:
    """The commit of the tree the benches run from (``+dirty`` when
    ``tornpool/`` has uncommitted changes), or ``None`` outside a git checkout."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "tornpool"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def server_version(dsn: str) -> str | None:
    import pymysql

    from bench._server import connect_params

    try:
        conn = pymysql.connect(**connect_params(dsn))
    except pymysql.MySQLError as exc:
        return f"unreachable: {exc}"
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def loop_probe_ns() -> float:
    """Nanoseconds per iteration of a bare Python loop (best of 3): how fast
    this VM runs Python right now."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(200_000):
            pass
        best = min(best, (time.perf_counter() - t) / 200_000 * 1e9)
    return round(best, 2)


def _cpu_times() -> dict[str, float]:
    try:
        import psutil
    except ImportError:
        return {}
    return {k: float(v) for k, v in psutil.cpu_times()._asdict().items()}


class Recorder:
    """Collects one (suite, placement) run's document and writes it.

    :param suite: ``core``, ``pool``, ``codec`` or ``floor``.
    :param placement: ``pinned``, ``unpinned`` or ``external``.
    :param options: the suite's options (recorded as given).
    :param command: the command line that ran it.
    """

    def __init__(self, suite: str, placement: str, options: dict[str, Any], command: str) -> None:
        self.doc: dict[str, Any] = {
            "suite": suite,
            "placement": placement,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "options": options,
            "machine": {
                "cpu_model": cpu_model(),
                "nproc": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg_before": list(os.getloadavg()),
                "loop_ns_before": loop_probe_ns(),
            },
            "versions": versions(),
        }
        self._cpu0 = _cpu_times()
        self._t0 = time.perf_counter()

    def placed(self, server_cpus: list[int] | None, client_cpus: list[int] | None,
               server: str | None) -> None:
        """Record where the server and the clients ran, and the server's version."""
        self.doc["machine"]["server_cpus"] = server_cpus
        self.doc["machine"]["client_cpus"] = client_cpus
        self.doc["versions"]["server"] = server

    def finish(self, results_dir: Path | None) -> Path | None:
        """Close the document (load, steal, loop probe after the run) and
        write it under ``results_dir`` (``None``: do not write)."""
        machine = self.doc["machine"]
        machine["loadavg_after"] = list(os.getloadavg())
        machine["loop_ns_after"] = loop_probe_ns()
        cpu1 = _cpu_times()
        if self._cpu0 and cpu1:
            spent = {k: cpu1[k] - self._cpu0[k] for k in cpu1}
            total = sum(spent.values()) or 1.0
            machine["cpu_steal_pct"] = round(100 * spent.get("steal", 0.0) / total, 2)
            machine["cpu_idle_pct"] = round(100 * spent.get("idle", 0.0) / total, 2)
        self.doc["seconds"] = round(time.perf_counter() - self._t0, 1)
        if results_dir is None:
            return None
        results_dir.mkdir(parents=True, exist_ok=True)
        while True:
            path = results_dir / f"{self.doc['suite']}-{self.doc['placement']}-{utc_stamp()}.json"
            if not path.exists():
                break
            time.sleep(1)  # two runs of one suite within a second: the names sort by time
        path.write_text(json.dumps(self.doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        return path


def newest(results_dir: Path) -> dict[tuple[str, str], Path]:
    """The newest results file of each (suite, placement) under ``results_dir``."""
    found: dict[tuple[str, str], tuple[str, Path]] = {}
    if not results_dir.is_dir():
        return {}
    for path in results_dir.iterdir():
        m = _NAME.match(path.name)
        if not m:
            continue
        key = (m["suite"], m["placement"])
        if key not in found or m["stamp"] > found[key][0]:
            found[key] = (m["stamp"], path)
    return {k: v[1] for k, v in sorted(found.items())}


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc
