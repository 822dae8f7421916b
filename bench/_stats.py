"""Figures from rounds: medians, medians of per-round ratios, Markdown tables.

A round runs every client once, one after another, in an order that rotates
from round to round.  A ratio is taken within each round (both figures were
measured minutes apart at most, on the same VM speed) and the table shows the
median of those per-round ratios -- not the ratio of two medians, which would
pair figures from different rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

Rounds = list[dict[str, Any]]
"""One dict per round: ``{client: figures}``; a client that failed or was
skipped in a round is absent from it."""


def rounds_of(doc: dict[str, Any]) -> Rounds:
    """The per-round figures of a results document."""
    return [r["results"] for r in doc.get("rounds", [])]


def rotated(items: Sequence[T], k: int) -> list[T]:
    """``items`` rotated left by ``k``: round ``k``'s running order, so that no
    client always runs first (after the previous round's pause) or last."""
    if not items:
        return []
    k %= len(items)
    return list(items[k:]) + list(items[:k])


def median_of(values: Iterable[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def pick(figures: Any, path: Sequence[str]) -> float | None:
    """``figures[path[0]][path[1]]...``, or ``None`` where a level is missing."""
    for key in path:
        if not isinstance(figures, dict) or key not in figures:
            return None
        figures = figures[key]
    return float(figures) if isinstance(figures, (int, float)) else None


def median_over_rounds(rounds: Rounds, client: str, path: Sequence[str]) -> float | None:
    """Median over the rounds of ``client``'s figure at ``path``."""
    return median_of(pick(r.get(client), path) for r in rounds)


def median_ratio(rounds: Rounds, client: str, base: str, path: Sequence[str]) -> float | None:
    """Median over the rounds of ``client``'s figure / ``base``'s figure in the
    same round (rounds missing either are left out)."""
    ratios = []
    for r in rounds:
        a, b = pick(r.get(client), path), pick(r.get(base), path)
        if a is not None and b:
            ratios.append(a / b)
    return statistics.median(ratios) if ratios else None


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    """``value`` formatted, or ``-`` when there is none."""
    return "-" if value is None else format(value, spec) + suffix


def ratio(value: float | None) -> str:
    return fmt(value, ".2f", "x")


def table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1) -> str:
    """A Markdown table; columns from ``numeric_from`` on are right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i >= numeric_from else "---" for i in range(len(header))) + "|"]
    for row in rows:
        cells = list(row) + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_round_minmax(rounds: Rounds, client: str, path: Sequence[str]) -> tuple[float, float] | None:
    """The lowest and highest of ``client``'s figure over the rounds (the
    spread that the plots draw as whiskers)."""
    got = [v for v in (pick(r.get(client), path) for r in rounds) if v is not None]
    return (min(got), max(got)) if got else None


def machine_line(doc: dict[str, Any]) -> str:
    """One line saying where and when a results document was measured."""
    m = doc.get("machine", {})
    v = doc.get("versions", {})
    load0 = m.get("loadavg_before") or [None]
    load1 = m.get("loadavg_after") or [None]
    parts = [
        f"{doc.get('started', '?')}",
        f"placement {doc.get('placement')}"
        + (f" (server CPU {m['server_cpus']}, clients CPU {m['client_cpus']})"
           if doc.get("placement") == "pinned" and m.get("server_cpus") else ""),
        f"{m.get('nproc')} x {m.get('cpu_model')}",
        f"load {fmt(load0[0])} -> {fmt(load1[0])}",
        f"steal {fmt(m.get('cpu_steal_pct'), '.1f', '%')}",
        f"bare loop {fmt(m.get('loop_ns_before'), '.1f')} -> {fmt(m.get('loop_ns_after'), '.1f')} ns/iter",
        f"Python {v.get('python')}, Tornado {v.get('tornado')}, server {v.get('server')}"
        + (f", tornpool {v['tornpool commit']}" if v.get("tornpool commit") else ""),
    ]
    return "; ".join(parts)
