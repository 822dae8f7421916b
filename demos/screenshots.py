"""Take the dashboard screenshots the docs show (``docs/images/*.png``).

    python -m demos.screenshots [--out docs/images] [--dsn mysql://...]

Starts the demo (with its own throwaway MariaDB unless ``--dsn``), opens it
in headless Chromium (Debian's ``chromium`` and ``chromium-driver``), and
saves:

* ``dashboard-kill.png`` -- after a held connection was killed from the admin
  pool: the lost connection, the failed request by type, the replacement;
* ``dashboard-burst.png`` -- during a load burst that follows: the pool at
  its cap, requests waiting, the charts climbing;
* ``shop.png`` -- the shop's products and forms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from demos import browser
from demos.launch import ROOT, demo_process, get_json, post_json

__all__ = ["main", "take"]

WIDTH = 1360


def _full_page(driver: Any, path: str) -> None:
    # The window's height includes the browser's own bars: add them.
    height, bars = driver.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
    driver.set_window_size(WIDTH, int(height) + int(bars))
    time.sleep(0.3)  # let the charts redraw at the new size
    driver.save_screenshot(path)
    print(f"wrote {os.path.relpath(path)}", flush=True)


def _wait(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def take(base: str, out: str) -> None:
    """Drive the demo at ``base`` and write the PNGs into ``out``."""
    from selenium.webdriver.common.by import By

    os.makedirs(out, exist_ok=True)
    with browser.chromium(WIDTH, 1000) as driver:
        driver.get(base + "/dashboard")
        _wait("the dashboard", lambda: driver.find_element(By.ID, "live").text == "live")
        time.sleep(3)  # some history for the charts
        # At the pool's size (4), so the kill is followed by a replacement at once.
        post_json(base + "/api/load/hold", {"count": 1, "seconds": 30})
        _wait("a held connection", lambda: get_json(base + "/api/pool")["frame"]["in_use"] == 1)
        driver.find_element(By.ID, "btn-kill-busy").click()
        _wait("the replacement", lambda: (lambda f: f["open"] == 4 and f["closes"] == 1)(
            get_json(base + "/api/pool")["frame"]))
        time.sleep(2)
        _full_page(driver, os.path.join(out, "dashboard-kill.png"))
        driver.set_window_size(WIDTH, 1000)
        driver.find_element(By.ID, "btn-burst").click()
        _wait("a full pool", lambda: get_json(base + "/api/pool")["frame"]["waiting"] > 0)
        time.sleep(1.0)
        _full_page(driver, os.path.join(out, "dashboard-burst.png"))
        driver.set_window_size(WIDTH, 1000)
        driver.get(base + "/")
        _full_page(driver, os.path.join(out, "shop.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images"))
    parser.add_argument("--dsn", default=None, help="a server to use instead of a throwaway one")
    args = parser.parse_args()
    why = browser.missing()
    if why is not None:
        sys.exit(f"tornpool screenshots: {why}")
    # --size 4 --max-size 10 are the demo's defaults; say them so the shots match the docs
    with demo_process(args.dsn, extra_args=("--size", "4", "--max-size", "10")) as base:
        take(base, args.out)


if __name__ == "__main__":
    main()
