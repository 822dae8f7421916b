"""The figures the open issues set as contracts, checked against a results document.

From "The hot path, redesigned" (ratios against asyncmy in the same run):

* ``SELECT 1`` sequential: tornpool's client CPU/query <= asyncmy's (aim 0.8x);
* 10k-row fetch: tornpool's CPU/row <= 0.8x asyncmy's; the pure twin's <= PyMySQL's;
* pool, 100 coroutines / 10 connections, ``SELECT 1`` and 20 rows: q/s >=
  asyncmy-pool's (aim 1.2x) with max latency <= 3x median;
  ``SELECT SLEEP(0.005)``: client CPU/query <= asyncmy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import _stats


@dataclass(frozen=True)
class Target:
    suite: str
    label: str
    client: str
    path: tuple[str, ...]
    base: str | None  # None: the figure itself, not a ratio
    bound: float
    at_most: bool  # True: measured <= bound; False: measured >= bound
    aim: float | None = None


TARGETS = (
    Target("core", "SELECT 1 CPU/query, tornpool x asyncmy", "tornpool", ("select1", "cpu_us"),
           "asyncmy", 1.0, True, 0.8),
    Target("core", "10k fetch CPU/row, tornpool x asyncmy", "tornpool", ("fetch", "cpu_us"),
           "asyncmy", 0.8, True),
    Target("core", "10k fetch CPU/row, tornpool-pure x PyMySQL", "tornpool-pure", ("fetch", "cpu_us"),
           "pymysql", 1.0, True),
    Target("pool", "SELECT 1 q/s, tornpool x asyncmy", "tornpool", ("select1", "qps"), "asyncmy", 1.0,
           False, 1.2),
    Target("pool", "SELECT 1 max/median latency, tornpool", "tornpool", ("select1", "max_over_p50"), None,
           3.0, True),
    Target("pool", "20 rows q/s, tornpool x asyncmy", "tornpool", ("rows20", "qps"), "asyncmy", 1.0,
           False, 1.2),
    Target("pool", "20 rows max/median latency, tornpool", "tornpool", ("rows20", "max_over_p50"), None,
           3.0, True),
    Target("pool", "SLEEP(0.005) CPU/query, tornpool x asyncmy", "tornpool", ("sleep5ms", "cpu_us"),
           "asyncmy", 1.0, True),
)


def check(doc: dict[str, Any]) -> list[tuple[Target, float | None, bool | None]]:
    """(target, measured, met) for every target of ``doc``'s suite; measured
    is a median of per-round ratios, or the median figure where ``base`` is
    ``None``; ``None`` where the run has no such figure."""
    rounds = _stats.rounds_of(doc)
    out: list[tuple[Target, float | None, bool | None]] = []
    for t in TARGETS:
        if t.suite != doc.get("suite"):
            continue
        if t.base is None:
            value = _stats.median_over_rounds(rounds, t.client, t.path)
        else:
            value = _stats.median_ratio(rounds, t.client, t.base, t.path)
        met = None if value is None else (value <= t.bound if t.at_most else value >= t.bound)
        out.append((t, value, met))
    return out


def render(doc: dict[str, Any]) -> str:
    """A Markdown table of :func:`check`, or an empty string when the suite has no targets."""
    rows = []
    for t, value, met in check(doc):
        bound = ("<= " if t.at_most else ">= ") + f"{t.bound:g}" + (f" (aim {t.aim:g})" if t.aim else "")
        rows.append([t.label, _stats.fmt(value), bound, "-" if met is None else ("yes" if met else "**no**")])
    if not rows:
        return ""
    return _stats.table(["target", "measured", "contract", "met"], rows)
