"""The documentation site builds with warnings as errors, and the API
reference is there (Sphinx in a child process, into a temporary directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_docs_site_builds_without_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "html"
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": ""})
    assert run.returncode == 0, f"sphinx failed:\n{run.stderr[-6000:]}"
    assert run.stderr.strip() == ""  # -q leaves only warnings and errors
    for page in ("index", "quickstart", "demo", "tuning", "pool", "connection", "codec",
                 "testing", "architecture", "benchmarks", "bench/README", "api/index"):
        assert (out / f"{page}.html").is_file(), page
    api = (out / "api" / "tornpool.html").read_text(encoding="utf-8")
    # autodoc read the docstrings: the pool's hot path and the dashboard's metrics
    for name in ("tornpool.Pool.execute", "tornpool.Pool.histograms", "tornpool.Pool.add_listener",
                 "tornpool.connect", "tornpool.SSCursor"):
        assert f'id="{name}"' in api, name
    assert 'id="tornpool.pool.stats.Histogram.quantile"' in (out / "api" / "pool.html").read_text(
        encoding="utf-8")
    for image in ("dashboard-burst.png", "dashboard-kill.png", "shop.png", "pool-qps.png"):
        assert (out / "_images" / image).is_file(), image
