"""``bench report``: the newest results as Markdown tables and PNG plots.

    python -m bench report [--results-dir bench/results] [--out docs/bench]

For every suite with results, takes the newest file of each placement and
writes ``<out>/<suite>.md`` (the suite's tables per placement, the issue
targets where the suite has some, the plots), the plots
(``bench/report_plots.py``), a ``README.md`` index, and a copy of every
JSON it rendered under ``<out>/data/`` -- the results that go into git;
``bench/results/`` itself stays out of it.  Files the report wrote before
and no longer writes are removed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from bench import _results, targets
from bench.report_plots import PLOTS

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs" / "bench"

TITLES = {
    "core": "Client: sequential SELECT 1 and the 10k-row fetch (`bench core`)",
    "pool": "Pools: 100 coroutines on 10 connections (`bench pool`)",
    "codec": "Row decoding alone (`bench codec`)",
    "floor": "A SELECT 1 round trip, layer by layer (`bench floor`)",
}
ORDER = ("core", "pool", "codec", "floor")
MARK = "<!-- written by python -m bench report; edits are overwritten -->"


def _renderer(suite: str) -> Any:
    from bench import codec_bench, core_bench, floor, pool_bench

    return {"core": core_bench.render, "pool": pool_bench.render, "codec": codec_bench.render,
            "floor": floor.render}[suite]


def _clear(out: Path) -> None:
    """Remove what an earlier report wrote (and only that)."""
    for path in out.glob("*.png"):
        path.unlink()
    for path in out.glob("*.md"):
        if path.read_text(encoding="utf-8").startswith(MARK):
            path.unlink()
    data = out / "data"
    if data.is_dir():
        for path in data.glob("*.json"):
            path.unlink()


def suite_page(suite: str, docs: dict[str, dict[str, Any]], sources: dict[str, Path],
               plots: list[Path]) -> str:
    lines = [MARK, f"# {TITLES.get(suite, suite)}", ""]
    for placement, doc in docs.items():
        lines += [f"## {placement}", "", _renderer(suite)(doc).rstrip(), ""]
        checked = targets.render(doc)
        if checked:
            lines += ["Targets from the issues (ratios are medians of per-round ratios):", "", checked, ""]
        lines += [f"Raw figures: [data/{sources[placement].name}](data/{sources[placement].name}); "
                  f"command: `{doc.get('command')}`; {doc.get('seconds')} s.", ""]
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def index_page(rendered: dict[str, dict[str, dict[str, Any]]], missing: list[str]) -> str:
    lines = [MARK, "# Benchmark results", "",
             "Rendered by `python -m bench report` from the newest results of each suite and "
             "placement; see [../benchmarks.md](../benchmarks.md) for the method and how to read "
             "the tables. Figures of different runs are not comparable on this VM: compare the "
             "ratios within one run.", ""]
    for suite, docs in rendered.items():
        when = ", ".join(f"{p} {d.get('started')}" for p, d in docs.items())
        lines.append(f"- [{TITLES.get(suite, suite)}]({suite}.md): {when}")
    for suite in missing:
        lines.append(f"- {TITLES.get(suite, suite)}: no results yet (`python -m bench {suite}`)")
    summary = []
    for suite, docs in rendered.items():
        for placement, doc in docs.items():
            checked = targets.render(doc)
            if checked:
                summary += [f"### {suite}, {placement}", "", checked, ""]
    if summary:
        lines += ["", "## Targets", ""] + summary
    return "\n".join(lines).rstrip() + "\n"


def report(results_dir: Path, out: Path) -> list[Path]:
    """Render the newest results under ``results_dir`` into ``out``.

    :returns: the files written.
    :raises SystemExit: there are no results to render.
    """
    newest = _results.newest(results_dir)
    if not newest:
        raise SystemExit(f"no results under {results_dir}: run python -m bench core (or pool, codec, floor)")
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    (out / "data").mkdir(exist_ok=True)
    written: list[Path] = []
    rendered: dict[str, dict[str, dict[str, Any]]] = {}
    for suite in [s for s in ORDER if any(k[0] == s for k in newest)]:
        sources = {placement: path for (s, placement), path in newest.items() if s == suite}
        docs = {placement: _results.load(path) for placement, path in sources.items()}
        for path in sources.values():
            written.append(Path(shutil.copy2(path, out / "data" / path.name)))
        plots = PLOTS[suite](docs, out)
        written += plots
        page = out / f"{suite}.md"
        page.write_text(suite_page(suite, docs, sources, plots), encoding="utf-8")
        written.append(page)
        rendered[suite] = docs
    index = out / "README.md"
    index.write_text(index_page(rendered, [s for s in ORDER if s not in rendered]), encoding="utf-8")
    written.append(index)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", type=Path, default=_results.RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=DOCS_DIR, help="default docs/bench/")
    args = parser.parse_args(argv)
    for path in report(args.results_dir, args.out):
        print(path)


if __name__ == "__main__":
    main()
