"""Framework overhead: the full default run (Split-MNIST, 5 x 2000 steps) against a plain PyTorch loop.

Both run in this process, one after the other, on the same model architecture, the same device tensors,
the same batches and the same optimizer, so the ratio is meaningful on a noisy machine. Also reports the
time from `python run.py` to the first training step (a subprocess).

    python bench/overhead.py [--benchmark split_mnist] [--iterations 2000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lepton_research import cli  # noqa: E402
from lepton_research.config import register  # noqa: E402
from lepton_research.data.stream import TensorBatches  # noqa: E402
from lepton_research.loop import seed_all, task_seed  # noqa: E402


def compose_cfg(overrides: list[str]):
    register()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def plain_loop(cfg) -> float:
    """The same protocol written as a plain PyTorch loop; returns seconds spent in the training steps."""
    seed_all(cfg.seed)
    stream = instantiate(cfg.benchmark, scenario=cfg.scenario.name)
    model = instantiate(cfg.model, in_shape=stream.input_shape, out_features=stream.scenario.out_features)
    total = 0.0
    for t, task in enumerate(stream):
        optimizer = instantiate(cfg.optimizer)(model.parameters())
        active = stream.scenario.active_mask(stream.seen_classes(t + 1))
        batches = TensorBatches(
            task.train,
            cfg.train.batch_size,
            cfg.train.iterations,
            cfg.train.epochs,
            torch.Generator().manual_seed(task_seed(cfg.seed, t)),
        )
        start = time.perf_counter()
        for x, y, task_ids in batches:
            loss = F.cross_entropy(stream.scenario.select(model(x), task_ids, active), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        total += time.perf_counter() - start
    return total


def framework(cfg, out: Path) -> tuple[float, float]:
    """The real run (cli.run, MLflow on a temporary sqlite store); returns (training seconds, wall seconds)."""
    start = time.perf_counter()
    result = cli.run(cfg, output_dir=out)
    return result["fit_seconds"], time.perf_counter() - start


def time_to_first_step(benchmark: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                sys.executable,
                "run.py",
                f"benchmark={benchmark}",
                "train.iterations=1",
                "tracking=none",
                f"hydra.run.dir={tmp}/run",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        found = re.search(r"first training step ([0-9.]+) s after process start", done.stdout + done.stderr)
        if not found:
            raise RuntimeError(f"run.py did not report its first step:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="split_mnist")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            f"benchmark={args.benchmark}",
            f"train.iterations={args.iterations}",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db",
            "tracking.experiment=bench",
        ]
        cfg = compose_cfg(overrides)
        steps = len(cfg.benchmark.get("tasks") or range(cfg.benchmark.n_tasks)) * args.iterations
        for r in range(args.repeats):
            plain = plain_loop(cfg)
            train, wall = framework(cfg, Path(tmp) / f"run{r}")
            print(
                f"[{r}] {steps} steps | plain loop {plain:.1f} s ({1000 * plain / steps:.2f} ms/step) | "
                f"lepton training {train:.1f} s ({1000 * train / steps:.2f} ms/step), whole run {wall:.1f} s | "
                f"ratio {train / plain:.3f}"
            )
    print(f"time from `python run.py` to the first training step: {time_to_first_step(args.benchmark):.1f} s")


if __name__ == "__main__":
    main()
