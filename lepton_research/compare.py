"""Compare strategies across seeds, from MLflow: average accuracy and forgetting against tasks trained.

    python -m lepton_research.compare --sweep multirun/2026-12-04/19-30-00     # the jobs of one multirun
    python -m lepton_research.compare --experiment lepton                     # every FINISHED run of an experiment

One line per strategy (and per scenario/benchmark where the runs differ in those), the mean over seeds with a band
of +- s.e.m.; writes ``compare.png`` and ``compare.md`` and logs both to a summary run (tag
``lepton.kind=comparison``) in the same experiment. Every job of a multirun carries the tag ``lepton.sweep`` (its
sweep folder), which ``--sweep`` selects.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from lepton_research.metrics import mean_sem
from lepton_research.tracking import resolve_uri

CURVES = (("acc/avg_seen", "average accuracy (tasks seen)"), ("forgetting/avg", "average forgetting"))
VARYING = ("lepton.benchmark", "lepton.scenario")


def find_runs(client, experiment: str | None, sweep: str | None) -> tuple[list, str]:
    """FINISHED task-sequence runs of the experiment (or of every experiment, for a sweep), and the experiment id
    the summary run goes to."""
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise ValueError(f"there is no MLflow experiment named {experiment!r}")
        ids = [exp.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    filters = ["attributes.status = 'FINISHED'"]
    if sweep is not None:
        filters.append(f"tags.`lepton.sweep` = '{sweep}'")
    runs = client.search_runs(ids, filter_string=" and ".join(filters), max_results=50000)
    runs = [r for r in runs if r.data.tags.get("lepton.kind") != "comparison" and "lepton.strategy" in r.data.tags]
    if not runs:
        what = f"sweep {sweep!r}" if sweep else f"experiment {experiment!r}"
        raise ValueError(f"no FINISHED runs found for {what}")
    return runs, runs[0].info.experiment_id


def curves(client, runs: list, group_by: list[str]) -> dict[tuple, dict[str, np.ndarray]]:
    """group -> metric -> (n_runs x steps) array of the metric's history (step = tasks trained)."""
    keys = list(group_by) + [t for t in VARYING if t not in group_by and len({r.data.tags.get(t) for r in runs}) > 1]
    grouped: dict[tuple, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        group = tuple((k.removeprefix("lepton."), run.data.tags.get(k, "?")) for k in keys)
        for metric, _ in CURVES:
            history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
            grouped[group][metric].append([m.value for m in history if m.step >= 1])
    out = {}
    for group, per_metric in grouped.items():
        out[group] = {}
        for metric, rows in per_metric.items():
            steps = min(len(r) for r in rows)  # runs of one group share a stream; guard against a short one
            out[group][metric] = np.array([r[:steps] for r in rows])
    return out


def label(group: tuple) -> str:
    return ", ".join(v for _, v in group)


def plot(data: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(CURVES), figsize=(6 * len(CURVES), 4.2))
    for ax, (metric, name) in zip(axes, CURVES, strict=True):
        for group, per_metric in sorted(data.items()):
            values = per_metric[metric]
            if values.size == 0:
                continue
            first = 1 if metric.startswith("acc") else 2  # forgetting exists from the second task on
            x = np.arange(first, first + values.shape[1])
            mean, sem = mean_sem(values)
            line = ax.plot(x, mean, marker="o", label=f"{label(group)} (n={values.shape[0]})")[0]
            ax.fill_between(x, mean - sem, mean + sem, color=line.get_color(), alpha=0.2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tasks trained")
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(data: dict, title: str) -> str:
    lines = [
        f"# {title}",
        "",
        "Mean +- s.e.m. over seeds at the end of the stream.",
        "",
        "| group | n | final avg accuracy | final forgetting |",
        "|---|---|---|---|",
    ]
    for group, per_metric in sorted(data.items()):
        acc, forg = per_metric["acc/avg_seen"], per_metric["forgetting/avg"]
        cells = []
        for values in (acc, forg):
            if values.size == 0:
                cells.append("-")
                continue
            m, s = mean_sem(values[:, -1])
            cells.append(f"{m:.4f} +- {s:.4f}" if values.shape[0] > 1 else f"{m:.4f}")
        lines.append(f"| {label(group)} | {acc.shape[0]} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def compare(
    uri: str | None, experiment: str | None, sweep: str | None, out: Path, group_by: list[str], log: bool = True
) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_uri(uri))
    runs, experiment_id = find_runs(client, experiment, sweep)
    data = curves(client, runs, group_by)
    title = f"sweep {sweep}" if sweep else f"experiment {experiment}"
    out.mkdir(parents=True, exist_ok=True)
    plot(data, out / "compare.png", title)
    text = markdown(data, title)
    (out / "compare.md").write_text(text)
    summary_run = None
    if log:
        tags = {"lepton.kind": "comparison", "lepton.compared_runs": str(len(runs))}
        if sweep:
            tags["lepton.sweep"] = sweep
        run = client.create_run(experiment_id, run_name=f"compare {title}", tags=tags)
        for name in ("compare.png", "compare.md"):
            client.log_artifact(run.info.run_id, str(out / name))
        client.set_terminated(run.info.run_id, "FINISHED")
        summary_run = run.info.run_id
    return {"runs": len(runs), "groups": data, "markdown": text, "summary_run": summary_run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_research.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default=None, help="the lepton.sweep tag of a multirun (its sweep folder)")
    parser.add_argument("--experiment", default=None, help="an MLflow experiment name")
    parser.add_argument("--uri", default=None, help="MLflow tracking URI (default: as run.py)")
    parser.add_argument("--group-by", nargs="+", default=["lepton.strategy"], help="tags that make a line")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: outputs/compare/<name>)")
    parser.add_argument("--no-log", action="store_true", help="do not create the summary run")
    args = parser.parse_args(argv)
    if args.sweep is None and args.experiment is None:
        parser.error("give --sweep <id> or --experiment <name>")
    name = (args.sweep or args.experiment).strip("/").replace("/", "_")
    out = args.out or Path("outputs") / "compare" / name
    try:
        result = compare(args.uri, args.experiment, args.sweep, out, args.group_by, log=not args.no_log)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result["markdown"])
    print(f"{result['runs']} runs; written {out / 'compare.png'}, {out / 'compare.md'}")
    if result["summary_run"]:
        print(f"logged to summary run {result['summary_run']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
