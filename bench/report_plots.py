"""PNG plots of results documents (matplotlib, no display needed).

Bars are medians over the rounds; the whiskers span the lowest and highest
round, so a plot shows how far the VM moved the figure during the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import _stats

Docs = dict[str, dict[str, Any]]
"""placement -> results document of one suite."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax: Any, docs: Docs, clients: Sequence[str], path: Sequence[str], ylabel: str,
          log: bool = False) -> None:
    """Grouped bars: one group per client, one bar per placement."""
    width = 0.8 / max(1, len(docs))
    for i, (placement, doc) in enumerate(docs.items()):
        rounds = _stats.rounds_of(doc)
        xs, heights, lows, highs = [], [], [], []
        for j, client in enumerate(clients):
            med = _stats.median_over_rounds(rounds, client, path)
            spread = _stats.per_round_minmax(rounds, client, path)
            if med is None or spread is None:
                continue
            xs.append(j + (i - (len(docs) - 1) / 2) * width)
            heights.append(med)
            lows.append(med - spread[0])
            highs.append(spread[1] - med)
        ax.bar(xs, heights, width, yerr=[lows, highs], capsize=2, label=placement)
    ax.set_xticks(range(len(clients)))
    ax.set_xticklabels(clients, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return path


def _clients(docs: Docs) -> list[str]:
    """Every client any placement measured, in the order first listed."""
    seen: list[str] = []
    for doc in docs.values():
        for c in doc["clients"]:
            if c not in seen and c not in doc.get("unavailable", {}):
                seen.append(c)
    return seen


def core_plots(docs: Docs, out: Path) -> list[Path]:
    plt = _pyplot()
    clients = _clients(docs)
    fig, ax = plt.subplots(figsize=(7, 4))
    _bars(ax, docs, clients, ("select1", "cpu_us"), "client CPU us per query")
    ax.set_title("bench core: sequential SELECT 1, client CPU per query (lower is better)", fontsize=10)
    paths = [_save(fig, out / "core-select1-cpu.png")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    _bars(axes[0], docs, clients, ("fetch", "rows_per_s"), "rows/s (wall)")
    axes[0].set_title("10k-row fetch: rows/s (higher is better)", fontsize=10)
    _bars(axes[1], docs, clients, ("fetch", "cpu_us"), "client CPU us per row", log=True)
    axes[1].set_title("10k-row fetch: CPU per row (lower is better)", fontsize=10)
    paths.append(_save(fig, out / "core-fetch.png"))
    return paths


def pool_plots(docs: Docs, out: Path) -> list[Path]:
    from bench.pool_bench import LABELS

    plt = _pyplot()
    pools = _clients(docs)
    scenarios = next(iter(docs.values()))["scenarios"]
    paths = []
    for key, ylabel, name, better in (("qps", "requests/s", "pool-qps.png", "higher"),
                                      ("cpu_us", "client CPU us per request", "pool-cpu.png", "lower")):
        fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
        for ax, scenario in zip(axes[0], scenarios):
            _bars(ax, docs, pools, (scenario, key), ylabel)
            ax.set_title(f"{LABELS[scenario]}: {ylabel} ({better} is better)", fontsize=10)
        paths.append(_save(fig, out / name))
    for placement, doc in docs.items():
        rounds = _stats.rounds_of(doc)
        fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
        for ax, scenario in zip(axes[0], scenarios):
            width = 0.27
            for i, key in enumerate(("p50_ms", "p99_ms", "max_ms")):
                values = [_stats.median_over_rounds(rounds, p, (scenario, key)) for p in pools]
                xs = [j + (i - 1) * width for j, v in enumerate(values) if v is not None]
                ax.bar(xs, [v for v in values if v is not None], width, label=key[:-3])
            ax.set_xticks(range(len(pools)))
            ax.set_xticklabels(pools, rotation=30, ha="right", fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("latency of a request, ms")
            ax.set_title(f"{LABELS[scenario]}, {placement}: latency percentiles", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"pool-latency-{placement}.png"))
    return paths


def codec_plots(docs: Docs, out: Path) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    _bars(ax, docs, _clients(docs), ("cpu_us",), "CPU us per row", log=True)
    ax.set_title("bench codec: decoding alone, CPU per row (lower is better)", fontsize=10)
    return [_save(fig, out / "codec-cpu.png")]


def floor_plots(docs: Docs, out: Path) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    _bars(ax, docs, _clients(docs), ("cpu_us",), "client CPU us per SELECT 1")
    ax.set_title("bench floor: a SELECT 1 round trip, layer by layer (lower is better)", fontsize=10)
    return [_save(fig, out / "floor-cpu.png")]


PLOTS = {"core": core_plots, "pool": pool_plots, "codec": codec_plots, "floor": floor_plots}
