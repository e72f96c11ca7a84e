"""Measured against published: read runs back from MLflow by tags, aggregate seeds, compare with a paper's table.

    python -m lepton_research.report experiments/vandeven2019_three_scenarios [--uri sqlite:///mlflow.db]

Reads ``expected.yaml`` in the experiment folder, finds the FINISHED runs of its MLflow experiment, groups them by
``lepton.strategy`` x ``lepton.scenario`` (one run per config hash: the latest), and writes ``report.md`` (the
table, then a method x seed table per scenario, by ``lepton.seed``) and ``report.png`` (bars with error bars:
measured beside published) next to it. Verdict per cell: the measured mean lies within the published mean
+- max(2 s.e.m. of either, ``tolerance_points``).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from lepton_research.metrics import mean_sem
from lepton_research.tracking import resolve_uri


@dataclass
class Cell:
    strategy: str
    scenario: str
    published: tuple[float, float]
    values: list[float]
    seeds: list[str] = field(default_factory=list)  # the lepton.seed tag of each value, in the same order

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(mean_sem(self.values)[0]) if self.values else math.nan

    @property
    def sem(self) -> float:
        return float(mean_sem(self.values)[1]) if self.n > 1 else math.nan

    def verdict(self, points: float) -> str:
        if not self.values:
            return "no runs"
        pub_mean, pub_sem = self.published
        allowed = max(2 * pub_sem, 2 * (self.sem if self.n > 1 else 0.0), points)
        return "match" if abs(self.mean - pub_mean) <= allowed else "MISS"


def collect(expected: dict, uri: str) -> list[Cell]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(expected["mlflow_experiment"])
    runs = []
    if exp is not None:
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=50000,
        )
    latest: dict[str, object] = {}
    for run in runs:  # newest first: keep one run per config hash
        tags = run.data.tags
        if expected.get("benchmark") and tags.get("lepton.benchmark") != expected["benchmark"]:
            continue
        latest.setdefault(tags.get("lepton.config_hash", run.info.run_id), run)
    scale, metric = expected.get("scale", 1.0), expected["metric"]
    cells = []
    for strategy, row in expected["cells"].items():
        for scenario, (mean, sem) in row.items():
            found = sorted(
                (
                    (r.data.tags.get("lepton.seed", "?"), scale * r.data.metrics[metric])
                    for r in latest.values()
                    if r.data.tags.get("lepton.strategy") == strategy
                    and r.data.tags.get("lepton.scenario") == scenario
                    and metric in r.data.metrics
                ),
                key=lambda seed_value: _seed_key(seed_value[0]),
            )
            values = [v for _, v in found]
            seeds = [s for s, _ in found]
            cells.append(Cell(strategy, scenario, (float(mean), float(sem)), values, seeds))
    return cells


def markdown(expected: dict, cells: list[Cell]) -> str:
    points = expected.get("tolerance_points", 2.0)
    scenarios = expected["scenarios"]
    lines = [
        f"# {expected['paper']}",
        "",
        f"{expected['source']}.",
        "",
        f"Measured: `{expected['metric']}` x {expected.get('scale', 1)}, mean +- s.e.m. over n seeds. "
        f"Verdict: within published +- max(2 s.e.m. of either, {points} points).",
        "",
        "| method | " + " | ".join(f"{s} measured | {s} published | {s}" for s in scenarios) + " |",
        "|---|" + "---|---|---|" * len(scenarios),
    ]
    by_key = {(c.strategy, c.scenario): c for c in cells}
    for strategy in expected["cells"]:
        parts = []
        for s in scenarios:
            c = by_key.get((strategy, s))
            if c is None:
                parts += ["", "", ""]
                continue
            measured = f"{c.mean:.2f} +- {c.sem:.2f} (n={c.n})" if c.n > 1 else (f"{c.mean:.2f} (n=1)" if c.n else "-")
            parts += [measured, f"{c.published[0]:.2f} +- {c.published[1]:.2f}", c.verdict(points)]
        lines.append(f"| {strategy} | " + " | ".join(parts) + " |")
    matched = sum(c.verdict(points) == "match" for c in cells)
    lines += ["", f"{matched} of {len(cells)} cells match.", ""]
    lines += per_seed(expected, cells)
    return "\n".join(lines) + "\n"


def _seed_key(seed: str) -> tuple[int, int | str]:
    """Numeric seeds in numeric order, then any others."""
    return (0, int(seed)) if seed.lstrip("-").isdigit() else (1, seed)


def per_seed(expected: dict, cells: list[Cell]) -> list[str]:
    """One table per scenario, method x seed: the same seed deals the same classes to every method, so a
    deviation shared by all methods in a column comes from that seed's class order, not from a method."""
    lines = ["## Per seed", ""]
    for s in expected["scenarios"]:
        row_cells = [c for c in cells if c.scenario == s]
        seeds = sorted({seed for c in row_cells for seed in c.seeds}, key=_seed_key)
        if not seeds:
            continue
        lines += [f"{s}:", "", "| method | " + " | ".join(f"seed {x}" for x in seeds) + " |"]
        lines.append("|---|" + "---|" * len(seeds))
        for c in row_cells:
            by_seed = dict(zip(c.seeds, c.values, strict=True))
            lines.append(
                f"| {c.strategy} | " + " | ".join(f"{by_seed[x]:.2f}" if x in by_seed else "-" for x in seeds) + " |"
            )
        lines.append("")
    return lines


def bar_chart(expected: dict, cells: list[Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios, strategies = expected["scenarios"], list(expected["cells"])
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), sharey=True)
    by_key = {(c.strategy, c.scenario): c for c in cells}
    x = np.arange(len(strategies))
    for ax, s in zip(np.atleast_1d(axes), scenarios, strict=True):
        cs = [by_key[(m, s)] for m in strategies]
        ax.bar(
            x - 0.2,
            [c.mean for c in cs],
            0.4,
            yerr=[0 if math.isnan(c.sem) else c.sem for c in cs],
            capsize=3,
            label="measured",
        )
        ax.bar(
            x + 0.2,
            [c.published[0] for c in cs],
            0.4,
            yerr=[c.published[1] for c in cs],
            capsize=3,
            label="published",
            alpha=0.7,
        )
        ax.set_xticks(x, strategies, rotation=30)
        ax.set_title(s)
        ax.set_ylim(0, 105)
    np.atleast_1d(axes)[0].set_ylabel(f"{expected['metric']} (x {expected.get('scale', 1)})")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_research.report")
    parser.add_argument("experiment_dir", type=Path, help="folder with expected.yaml")
    parser.add_argument("--uri", default=None, help="MLflow tracking URI (default: as run.py)")
    parser.add_argument("--out", type=Path, default=None, help="where to write report.md/png (default: the folder)")
    args = parser.parse_args(argv)
    expected_file = args.experiment_dir / "expected.yaml"
    if not expected_file.is_file():
        print(f"error: {expected_file} does not exist", file=sys.stderr)
        return 1
    expected = yaml.safe_load(expected_file.read_text())
    cells = collect(expected, resolve_uri(args.uri))
    if not any(c.values for c in cells):
        print(
            f"error: no FINISHED runs in MLflow experiment '{expected['mlflow_experiment']}' "
            f"({resolve_uri(args.uri)}); run the sweep of {args.experiment_dir}/README.md first",
            file=sys.stderr,
        )
        return 1
    out = args.out or args.experiment_dir
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(expected, cells)
    (out / "report.md").write_text(text)
    bar_chart(expected, cells, out / "report.png")
    print(text)
    print(f"written: {out / 'report.md'}, {out / 'report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
