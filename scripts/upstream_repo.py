"""Where the suite runners find another project's git repository.

``scripts/pymysql_suite.py`` and ``scripts/tormysql_suite.py`` run other
projects' own tests from a local copy of their repository, never from a copy
in this one.  The copy is the one given (a clone or a bare mirror), else the
one an environment variable names, else a bare clone made once under
``~/.cache/tornpool/`` (``$XDG_CACHE_HOME`` if set).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path


def find_repo(given: str | None, env_var: str, name: str, url: str,
              log: Callable[[str], None]) -> Path:
    """The repository to read tests from: ``given``, ``$env_var``, or
    ``~/.cache/tornpool/<name>.git`` (cloned bare from ``url`` the first time)."""
    path = given or os.environ.get(env_var)
    if path:
        return Path(path)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tornpool" / f"{name}.git"
    if not cache.exists():
        log(f"cloning {url} into {cache} (bare; once)")
        cache.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", "--bare", url, str(cache)], check=True)
    return cache
