"""Headless Chromium for the dashboard's browser test and its screenshots.

Uses Debian's ``chromium`` and ``chromium-driver`` (``bash scripts/dev.sh
setup`` installs them) through selenium, with an explicit driver path so
selenium never tries to download a browser or a driver.  :func:`missing` says
why no browser can be started here (the test skips with that reason).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["CHROMIUM", "CHROMEDRIVER", "FLAGS", "missing", "chromium"]

CHROMIUM = os.environ.get("TORNPOOL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TORNPOOL_CHROMEDRIVER", "/usr/bin/chromedriver")

#: Flags that work on a headless, offline VM.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)


def _executable(path: str) -> str | None:
    found = shutil.which(path)
    return found if found and os.access(found, os.X_OK) else None


def missing() -> str | None:
    """Why headless Chromium cannot run here, or None."""
    if _executable(CHROMIUM) is None:
        return (f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver; "
                "bash scripts/dev.sh setup installs them)")
    if _executable(CHROMEDRIVER) is None:
        return (f"no chromedriver at {CHROMEDRIVER} (Debian: apt-get install chromium-driver; "
                "bash scripts/dev.sh setup installs it)")
    return None


@contextlib.contextmanager
def chromium(width: int = 1360, height: int = 1000) -> Iterator[Any]:
    """A selenium ``WebDriver`` on headless Chromium with a fresh profile,
    quit (and the profile removed) on exit.

    :raises RuntimeError: :func:`missing` says why not.
    """
    why = missing()
    if why is not None:
        raise RuntimeError(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tornpool-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
