"""The demo end to end in headless Chromium: the live dashboard follows a
burst and returns to idle, a killed server connection shows up as an error
and is replaced, and the shop's forms round-trip through the database.

The demo runs as ``python -m demos.app`` in a child process against a fresh
database; Debian's chromium and chromium-driver drive it through selenium.
Skips, with the reason, only where no browser is installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from demos import browser
from demos.launch import demo_process
from test_demo_util import fresh_database

T = TypeVar("T")

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 15.0,
             every: float = 0.05) -> T:
    """Poll ``probe()`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@pytest.fixture
def demo(mariadb_dsn: str) -> Iterator[str]:
    with fresh_database(mariadb_dsn) as dsn, demo_process(dsn) as base:
        yield base


@pytest.fixture
def chrome() -> Iterator[Any]:
    with browser.chromium() as driver:
        yield driver


READ_TILES = """
const out = {};
for (const k of ["open", "in_use", "idle", "waiting", "rate", "requests", "connects", "closes",
                 "errors_total", "size", "max_size"]) {
  const v = document.getElementById("m-" + k).textContent;
  out[k] = v === "-" ? null : Number(v);
}
out.frames = Number(document.getElementById("frames").textContent);
out.live = document.getElementById("live").textContent;
out.wait_p95 = document.getElementById("lat-wait-p95").textContent;
out.use_p50 = document.getElementById("lat-use-p50").textContent;
out.activity = document.getElementById("activity").dataset.busy;
out.connections = [...document.querySelectorAll("#connections tbody tr")].map(
    (tr) => [Number(tr.dataset.id), tr.dataset.state]);
out.errors = Object.fromEntries([...document.querySelectorAll("#errors tbody tr[data-error]")].map(
    (tr) => [tr.dataset.error, Number(tr.cells[1].textContent)]));
out.events = [...document.querySelectorAll("#events li")].map(
    (li) => [li.dataset.kind, li.dataset.id === undefined ? null : Number(li.dataset.id)]);
out.marker = window.__tornpoolMarker || null;
return out;
"""


def tiles(driver: Any) -> dict[str, Any]:
    return driver.execute_script(READ_TILES)  # type: ignore[no-any-return]


def until(driver: Any, what: str, check: Callable[[dict[str, Any]], bool],
          timeout: float = 15.0, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read the dashboard until ``check`` holds; every reading goes into ``seen``."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = tiles(driver)
        if seen is not None:
            seen.append(last)
        return last if check(last) else None

    try:
        return wait_for(what, probe, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the dashboard showed {last}") from None


def test_dashboard_follows_the_pool_and_the_shop_round_trips(demo: str, chrome: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    chrome.get(demo + "/dashboard")
    at_rest = until(chrome, "the dashboard to go live",
                    lambda t: t["live"] == "live" and t["open"] == 4 and t["frames"] >= 2)
    assert at_rest["max_size"] == 10 and at_rest["in_use"] == 0 and at_rest["waiting"] == 0
    assert len(at_rest["connections"]) == 4
    chrome.execute_script("window.__tornpoolMarker = 'no reload';")

    # Hold one connection, then kill it from the admin pool: the pool is at
    # its size (4), so it opens a replacement at once.
    hold = chrome.find_element(By.CSS_SELECTOR, "#hold-form input[name=count]")
    hold.clear()
    hold.send_keys("1")
    chrome.find_element(By.ID, "btn-hold").click()
    held = until(chrome, "a held connection",
                 lambda t: [state for _, state in t["connections"]].count("in use") == 1)
    victim = next(c for c, state in held["connections"] if state == "in use")
    before = {c for c, _ in held["connections"]}
    chrome.find_element(By.ID, "btn-kill-busy").click()

    def replaced(t: dict[str, Any]) -> bool:
        ids = {c for c, _ in t["connections"]}
        kinds = {kind for kind, cid in t["events"] if cid == victim}
        fresh = {cid for kind, cid in t["events"] if kind == "connect"} - before
        return ({"kill", "lost"} <= kinds and ["error", None] in t["events"]
                and victim not in ids and bool(fresh & ids) and len(ids) == 4
                and t["errors"].get("ConnectionLost") == 1)

    after_kill = until(chrome, "the killed connection to be reported and replaced", replaced)
    assert after_kill["errors_total"] == 1 and after_kill["closes"] == 1
    assert after_kill["connects"] == 5
    assert "killed #%d (in use)" % victim in chrome.find_element(By.ID, "control-status").text

    # A burst: 40 coroutines on at most 10 connections, 50 ms each, ~2 s.
    chrome.find_element(By.ID, "btn-burst").click()
    seen: list[dict[str, Any]] = []
    idle_again = until(
        chrome, "the burst to finish and the pool to go idle",
        lambda t: (len(seen) > 5 and t["activity"] == "0" and t["in_use"] == 0
                   and t["waiting"] == 0 and t["requests"] >= after_kill["requests"] + 400),
        timeout=30, seen=seen)
    assert max(t["in_use"] for t in seen) == 10  # the pool grew to its cap ...
    assert max(t["waiting"] for t in seen) > 0  # ... and requests queued for it
    assert max(t["open"] for t in seen) == 10
    assert max(t["rate"] for t in seen) > 0
    assert float(idle_again["wait_p95"]) > 0 and float(idle_again["use_p50"]) >= 40
    assert idle_again["frames"] > after_kill["frames"]
    assert idle_again["errors_total"] == 1  # the burst itself failed nothing
    assert idle_again["marker"] == "no reload"  # all of it arrived live

    # The shop's forms, through the database.
    chrome.get(demo + "/")
    form = chrome.find_element(By.ID, "product-form")
    for name, value in (("sku", "lamp-1"), ("name", "Desk lamp"), ("price", "24.90")):
        form.find_element(By.NAME, name).send_keys(value)
    stock = form.find_element(By.NAME, "stock")
    stock.clear()
    stock.send_keys("5")
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait_for("the new product", lambda: chrome.find_elements(By.ID, "flash-ok"))
    row = chrome.find_element(By.CSS_SELECTOR, 'tr[data-sku="LAMP-1"]')
    assert row.text.split()[-2:] == ["24.90", "5"]

    order = chrome.find_element(By.ID, "order-form")
    order.find_element(By.NAME, "customer").send_keys("Grace")
    Select(order.find_element(By.NAME, "product_id")).select_by_visible_text("Desk lamp (5 left)")
    qty = order.find_element(By.NAME, "qty")
    qty.clear()
    qty.send_keys("2")
    order.find_element(By.CSS_SELECTOR, "button").click()
    wait_for("the order page", lambda: chrome.find_elements(By.ID, "order-total"))
    assert chrome.find_element(By.ID, "order-total").text == "49.80"
    assert "Thank you, Grace" in chrome.find_element(By.ID, "flash-ok").text
    chrome.get(demo + "/")
    assert chrome.find_element(By.CSS_SELECTOR, 'tr[data-sku="LAMP-1"] .stock').text == "3"

    severe = [entry for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
