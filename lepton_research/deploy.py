"""The deployable model: the final network behind a forward that needs nothing of ours but the tensors.

``Deployable(x)`` returns the scenario's logits: class-IL all classes, domain-IL the shared head. A task-IL
(multi-head) model takes the task id as an explicit second input, ``Deployable(x, task_id)`` with ``task_id`` an
int or a tensor of one id per sample, and returns that head's logits. Exported twice into the MLflow run: as an
MLflow PyTorch model (``model/``: ``mlflow.pytorch.load_model(uri)`` or pyfunc ``predict(x, params={"task_id": j})``)
and as TorchScript (``torchscript/model.pt``: ``torch.jit.load``, no Python code of ours needed).

    python -m lepton_research.deploy evaluate runs:/<run_id>/model      # or models:/<name>/<version>

loads a model back by URI, rebuilds the benchmark of the run that logged it and prints its accuracy per task
beside the figures that run logged.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lepton_research.learner import score
from lepton_research.scenarios import Scenario


class Deployable(nn.Module):
    def __init__(self, model: nn.Module, scenario: Scenario) -> None:
        super().__init__()
        self.model = model.eval()
        self.task_il = scenario.name == "task_il"
        self.n_tasks, self.classes_per_task = scenario.n_tasks, scenario.classes_per_task

    def forward(self, x: torch.Tensor, task_id: torch.Tensor | int | None = None) -> torch.Tensor:
        out = self.model(x)
        if not self.task_il:
            return out
        if task_id is None:
            raise ValueError("this is a task-incremental (multi-head) model: call it as model(x, task_id)")
        if not isinstance(task_id, torch.Tensor):
            task_id = torch.full((x.shape[0],), int(task_id), dtype=torch.long, device=x.device)
        per_task = out.view(out.shape[0], self.n_tasks, self.classes_per_task)
        return per_task.gather(1, task_id.view(-1, 1, 1).expand(-1, 1, self.classes_per_task)).squeeze(1)


def torchscript(deployable: Deployable, example_x: torch.Tensor, path: Path) -> Path:
    """Trace the deployable (task-IL: with a per-sample task-id tensor) and save it."""
    example = (example_x, torch.zeros(example_x.shape[0], dtype=torch.long)) if deployable.task_il else (example_x,)
    with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; it still is the Python-free format
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        traced = torch.jit.trace(deployable.cpu().eval(), example, check_trace=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(path))
    return path


@torch.no_grad()
def evaluate_deployable(model: nn.Module, stream, chunk: int = 4096) -> list[float]:
    """Accuracy per test task of a loaded deployable (argmax over its logits), scored as R is."""

    task_il = stream.scenario.name == "task_il"
    accs = []
    for task in stream:
        data = task.test
        preds = torch.cat(
            [
                (
                    model(data.x[i : i + chunk], data.task[i : i + chunk]) if task_il else model(data.x[i : i + chunk])
                ).argmax(1)
                for i in range(0, len(data), chunk)
            ]
        )
        accs.append(score(preds, data.y, stream.scenario))
    return accs


def evaluate_uri(uri: str, tracking_uri: str | None = None, data_dir: str | None = None) -> dict:
    """Load the model at ``uri``, rebuild its run's benchmark from the logged config, evaluate every test task."""
    from omegaconf import OmegaConf

    from lepton_research.cli import build
    from lepton_research.tracking import load_logged_model

    model, run = load_logged_model(uri, tracking_uri)
    cfg = OmegaConf.create(run["config_yaml"])
    if data_dir is not None:
        cfg.data_dir = data_dir
    stream = build(cfg.benchmark, scenario=cfg.scenario.name)
    accs = evaluate_deployable(model.eval(), stream)
    prefix = run["logged_prefix"]
    logged = [run["metrics"].get(f"{prefix}task_{j}") for j in range(len(stream))]
    return {"uri": uri, "run_id": run["run_id"], "accuracy": accs, "logged": logged, "prefix": prefix}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_research.deploy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="load a model by MLflow URI and evaluate it on its run's benchmark")
    ev.add_argument("uri", help="runs:/<run_id>/model or models:/<name>/<version>")
    ev.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    ev.add_argument("--data-dir", default=None, help="override the data_dir the run used")
    args = parser.parse_args(argv)
    try:
        result = evaluate_uri(args.uri, args.tracking_uri, args.data_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{result['uri']} (run {result['run_id']}); logged figures: {result['prefix']}task_j")
    print("task  accuracy  logged")
    for j, (a, b) in enumerate(zip(result["accuracy"], result["logged"], strict=True)):
        print(f"{j:4d}  {a:.6f}  {'-' if b is None else f'{b:.6f}'}")
    print(f"mean  {np.mean(result['accuracy']):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
