"""Charts for the docs' benchmark page, drawn from the newest results file of each run_*.py.

    uv run python bench/plot_results.py [--results bench/results] [--out docs/benchmarks]

Each chart is a PNG named after its results family (``all.png``, ``h2.png``,
...), with the results file it came from in its title, so a chart always
says what it shows. ``all.png`` is run_all.py's ``all-latest.json``: every
workload of the goal table as a ratio to uvicorn-h11. Nothing is typed in by
hand: rerun a benchmark, rerun this script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker

HERE = Path(__file__).resolve().parent


def newest(results: Path, family: str) -> Path | None:
    """``family-latest.json`` if a script writes one (run_all.py), else the newest
    ``family-STAMP.json`` (so ``all-quick-*`` smoke runs never count as ``all``)."""
    latest = results / f"{family}-latest.json"
    if latest.exists():
        return latest
    files = sorted(results.glob(f"{family}-[0-9]*.json"))
    return files[-1] if files else None


def best_rps(rounds: list[dict[str, Any]]) -> float:
    return max(float(r.get("rps", 0.0)) for r in rounds) if rounds else 0.0


def series(family: str, data: dict[str, Any]) -> tuple[str, dict[str, dict[str, float]]]:
    """(value label, {group: {bar: value}}) for one results file."""
    if "ratios" in data:  # run_all.py: workload -> server -> ratio to the baseline
        labels = {s["key"]: s.get("label", s["key"]) for s in data.get("servers", [])}
        groups = {}
        for workload in data["workloads"]:
            ratios = data["ratios"].get(workload["key"], {})
            title = workload["title"] + (
                "" if workload["higher_is_better"] else " (lower is better)"
            )
            groups[title] = {
                labels.get(server, server): float(ratio)
                for server, ratio in ratios.items()
                if ratio is not None and server != data.get("baseline")  # it is the 1x line
            }
        base = labels.get(data.get("baseline", ""), data.get("baseline", "the baseline"))
        return f"ratio to {base} (the 1x line; best of each cell's rounds)", groups
    if "rows" in data:  # run_h2.py: one row per server and app
        groups: dict[str, dict[str, float]] = {}
        for row in data["rows"]:
            groups.setdefault(row["app"], {})[row["server"]] = float(row["rps"])
        return "requests per second", groups
    if "results" in data:  # run_fanout.py: server -> scenario -> measures
        groups = {}
        for server, scenarios in data["results"].items():
            for scenario, measures in scenarios.items():
                if isinstance(measures, dict) and "deliveries_per_s" in measures:
                    groups.setdefault(scenario, {})[server] = float(measures["deliveries_per_s"])
        return "deliveries per second", groups
    if "runs" in data:  # run_bridges/middleware/security.py: "who/what" -> rounds
        groups = {}
        for label, rounds in data["runs"].items():
            if not isinstance(rounds, list):
                continue
            who, _, what = label.partition("/")  # "server/case"
            if family == "bridges":  # "framework//path/server"
                head, _, who = label.rpartition("/")
                what = " ".join(head.replace("//", " ").split()) or label
            groups.setdefault(what or label, {})[who] = best_rps(rounds)
        return "requests per second (best round)", groups
    raise ValueError(f"{family}: unknown results layout {sorted(data)}")


def plot(family: str, source: Path, out: Path) -> Path:
    data = json.loads(source.read_text())
    label, groups = series(family, data)
    ratios = "ratios" in data
    if ratios:  # the servers in the run's column order
        bars = list(dict.fromkeys(bar for values in groups.values() for bar in values))
    else:
        bars = sorted({bar for values in groups.values() for bar in values})
    per_bar = 0.2 if ratios else 0.45
    fig, ax = plt.subplots(figsize=(9, 0.9 + per_bar * len(groups) * max(1, len(bars))))
    height = 0.8 / max(1, len(bars))
    names = list(groups)
    for i, bar in enumerate(bars):
        ys = [g + i * height for g in range(len(names))]
        values = [groups[n].get(bar, 0.0) for n in names]
        if ratios:  # bars grow from 1.0 (the baseline) to the ratio, left or right
            ax.barh(ys, [v - 1.0 if v else 0.0 for v in values], left=1.0, height=height, label=bar)
        else:
            ax.barh(ys, values, height=height, label=bar)
    ax.set_yticks([g + height * (len(bars) - 1) / 2 for g in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xlabel(label)
    title = f"{family}: {source.name}"
    if ratios:  # log scale: 0.5x and 2x lie equally far from the baseline's 1.0
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.axvline(1.0, color="black", linewidth=0.8)
        commit = (data.get("git", {}).get("commit") or "")[:7]
        title += f" ({data.get('created', '')[:10]}, commit {commit or '?'})"
    ax.set_title(title, fontsize=10)
    if ratios:  # below the chart: bars reach both edges, nowhere inside is free
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3)
    else:
        ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    target = out / f"{family}.png"
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target


FAMILIES = ["all", "h2", "bridges", "middleware", "security", "fanout"]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    made = []
    for family in FAMILIES:
        source = newest(args.results, family)
        if source is not None:
            made.append(plot(family, source, args.out))
            print(f"{made[-1]} <- {source}")
    return made


if __name__ == "__main__":
    main()
