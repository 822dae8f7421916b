"""TORNPOOL_CODEC chooses the implementation; IMPL reports it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tornpool import codec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _impl_with(value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TORNPOOL_CODEC", None)
    if value is not None:
        env["TORNPOOL_CODEC"] = value
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", "import tornpool.codec as c; print(c.IMPL, c.decode_rows.__module__)"],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )


def test_impl_matches_exports() -> None:
    assert codec.IMPL in ("c", "python")
    mod = codec.speedups if codec.IMPL == "c" else codec.pure
    assert codec.decode_rows is mod.decode_rows and codec.make_plan is mod.make_plan
    assert codec.Plan is mod.Plan


def test_force_python() -> None:
    out = _impl_with("python")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "python"


def test_default_prefers_c() -> None:
    out = _impl_with(None)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == ("c" if codec.speedups is not None else "python")


def test_force_c() -> None:
    out = _impl_with("c")
    if codec.speedups is None:
        assert out.returncode != 0 and "TORNPOOL_CODEC=c" in out.stderr
    else:
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == "c"


def test_bad_value() -> None:
    out = _impl_with("rust")
    assert out.returncode != 0 and "TORNPOOL_CODEC must be" in out.stderr


def test_force_c_without_extension_fails_clearly() -> None:
    # Simulate a missing extension: a None entry in sys.modules makes the
    # import of tornpool.codec._speedups raise ImportError.
    hide = "import sys; sys.modules['tornpool.codec._speedups'] = None; "
    env = dict(os.environ, TORNPOOL_CODEC="c")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", hide + "import tornpool.codec"], env=env,
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "cannot be imported" in out.stderr
    env["TORNPOOL_CODEC"] = ""
    out = subprocess.run([sys.executable, "-c", hide + "import tornpool.codec as c; print(c.IMPL)"],
                         env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "python", out.stderr
