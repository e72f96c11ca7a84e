"""Record in MLflow the runs that MLflow could not record when they ran (the store was down or unreachable).

    python -m lepton_research.upload outputs/2026-12-04/19-30-00 [more run folders ...] [--uri http://127.0.0.1:5000]

A run folder holds everything the run logged or would have logged: ``tracking.json`` (experiment, run name, tags,
params), ``accuracy_matrix.csv``, ``train_metrics.csv``, ``summary.json``, ``compress.json`` where compressed. The
upload creates a new FINISHED run with the same contract (every ``acc/*``/``forgetting/*`` step recomputed from
the matrix, ``train/*`` series, summary, artifacts), tagged ``lepton.uploaded_from``; a partial run the outage left
behind is named in ``lepton.replaces`` and marked FAILED. The model itself is not uploaded (its TorchScript file is).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from lepton_research.tracking import LOCAL_RECORD, TRAIN_CSV, UNLOGGED, Tracker, read_matrix_csv

log = logging.getLogger(__name__)


def previous_run_id(run_dir: Path) -> str | None:
    for line in (run_dir / UNLOGGED).read_text().splitlines() if (run_dir / UNLOGGED).is_file() else []:
        if line.startswith("run id: ") and line[len("run id: ") :] != "None":
            return line[len("run id: ") :].strip()
    return None


def upload(run_dir: Path, uri: str | None) -> str:
    """Upload one run folder; returns the new run's id."""
    run_dir = Path(run_dir)
    for name in (LOCAL_RECORD, "accuracy_matrix.csv", "config.yaml"):
        if not (run_dir / name).is_file():
            hint = " (the run did not finish its stream: resume it first)" if name == "accuracy_matrix.csv" else ""
            raise FileNotFoundError(f"{run_dir / name} is missing{hint}")
    record = json.loads((run_dir / LOCAL_RECORD).read_text())
    old = previous_run_id(run_dir)
    tags = {**record["tags"], "lepton.uploaded_from": str(run_dir.resolve())}
    if old:
        tags["lepton.replaces"] = old
    tracker = Tracker(
        run_dir,
        enabled=True,
        uri=uri,
        experiment=record["experiment"],
        run_name=record["run_name"],
        tags=tags,
        params=record["params"],
        config_yaml=(run_dir / "config.yaml").read_text(),
    )
    if tracker.start() is None:
        raise ConnectionError(f"MLflow at {tracker.uri} is still unreachable: {tracker.unlogged}")
    R = read_matrix_csv(run_dir / "accuracy_matrix.csv")
    for k in range(R.shape[0]):
        tracker.log_row(k, R)
    if (run_dir / TRAIN_CSV).is_file():
        rows = [line.split(",") for line in (run_dir / TRAIN_CSV).read_text().splitlines() if line]
        tracker.replay_train([(int(step), key, float(value)) for step, key, value in rows])
    t = record["tags"]
    tracker.finish(R, f"{t.get('lepton.strategy')} | {t.get('lepton.benchmark')} {t.get('lepton.scenario')}", False)
    if (run_dir / "compress.json").is_file():
        tracker.log_results("compress", json.loads((run_dir / "compress.json").read_text()), step=R.shape[1])
    if (run_dir / "model_torchscript.pt").is_file():
        tracker.log_file(run_dir / "model_torchscript.pt", "torchscript")
    tracker.terminate()
    if tracker.unlogged:
        raise ConnectionError(f"MLflow at {tracker.uri} went away during the upload: {tracker.unlogged}")
    if old:
        tracker.mark_failed(old)
    if (run_dir / UNLOGGED).is_file():
        (run_dir / UNLOGGED).rename(run_dir / "UPLOADED.txt")
    (run_dir / "UPLOADED.txt").write_text(f"uploaded as run {tracker.run_id} to {tracker.uri}\n")
    return tracker.run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_research.upload", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run output folders (each with tracking.json)")
    parser.add_argument("--uri", default=None, help="MLflow tracking URI (default: as run.py)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = 0
    for run_dir in args.run_dirs:
        try:
            run_id = upload(run_dir, args.uri)
            print(f"{run_dir}: uploaded as run {run_id}")
        except (FileNotFoundError, ConnectionError, ValueError) as e:
            failed += 1
            print(f"{run_dir}: error: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
