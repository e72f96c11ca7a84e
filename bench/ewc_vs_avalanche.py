"""One EWC run on full Split-MNIST (class-IL) with lepton and with Avalanche's EWC, side by side in one process.

Same data (data/MNIST/raw, pixels in [0, 1]), same model (784-400-400-10 MLP, same initial weights), same optimizer
(Adam lr 1e-3), same batch size and the same number of epochs per task, so the same number of iterations.
Avalanche's evaluation plugin has no loggers. Reports wall time, the ratio and both final average accuracies.
Note the formulations differ (see shared REPRODUCTION-NOTES): Avalanche squares batch-mean gradients and uses
lambda rather than lambda/2, and trains class-IL over all 10 output units.

    python bench/ewc_vs_avalanche.py [--epochs 21] [--lambda_ 1e8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402

from lepton_research import cli  # noqa: E402
from lepton_research.config import register  # noqa: E402
from lepton_research.models.mlp import MLP  # noqa: E402


def run_lepton(epochs: int, lam: float, tmp: str, seed: int) -> tuple[float, float]:
    register()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "strategy=ewc",
                "scenario=class_il",
                "train.iterations=null",
                f"train.epochs={epochs}",
                f"strategy.lambda_={lam}",
                f"seed={seed}",
                "tracking.log_model=false",
                f"tracking.uri=sqlite:///{tmp}/mlflow.db",
                "tracking.experiment=bench",
            ],
        )
    start = time.perf_counter()
    out = cli.run(cfg, output_dir=Path(tmp) / f"lepton-{seed}")
    return time.perf_counter() - start, out["final/avg_acc"]


def run_avalanche(epochs: int, lam: float, seed: int) -> tuple[float, float]:
    from avalanche.benchmarks.classic import SplitMNIST
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import EWC
    from avalanche.training.plugins import EvaluationPlugin

    start = time.perf_counter()
    bench = SplitMNIST(
        n_experiences=5,
        fixed_class_order=list(range(10)),
        dataset_root=str(ROOT / "data"),
        train_transform=None,
        eval_transform=None,
        seed=seed,
    )
    torch.manual_seed(seed)
    model = MLP(in_shape=(1, 28, 28), out_features=10)
    strategy = EWC(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3, fused=True),
        criterion=torch.nn.CrossEntropyLoss(),
        ewc_lambda=lam,
        mode="separate",
        train_mb_size=128,
        train_epochs=epochs,
        eval_mb_size=1024,
        device="cpu",
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
    )
    for experience in bench.train_stream:
        strategy.train(experience)
    results = strategy.eval(bench.test_stream)
    acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream"))
    return time.perf_counter() - start, float(acc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=21, help="per task; 21 x ~94 batches ~ 2000 iterations")
    parser.add_argument("--lambda_", type=float, default=1e8, help="van de Ven 2019 class-IL value")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="each seed runs both, one after the other")
    args = parser.parse_args()
    ours, theirs = [], []
    for seed in args.seeds:  # alternate the two so a change in machine load hits both
        with tempfile.TemporaryDirectory() as tmp:
            ours.append(run_lepton(args.epochs, args.lambda_, tmp, seed))
        theirs.append(run_avalanche(args.epochs, args.lambda_, seed))
        print(
            f"seed {seed}: lepton {ours[-1][0]:.1f} s acc {ours[-1][1]:.4f} | avalanche {theirs[-1][0]:.1f} s acc "
            f"{theirs[-1][1]:.4f}",
            flush=True,
        )
    print(f"EWC, Split-MNIST class-IL, {args.epochs} epochs/task, lambda {args.lambda_:g}, seeds {args.seeds}")
    for name, res in (("lepton", ours), ("avalanche", theirs)):
        secs, accs = sum(r[0] for r in res), [r[1] for r in res]
        each = ", ".join(f"{a:.4f}" for a in accs)
        print(f"{name:9s} {secs:7.1f} s in all  final avg acc mean {np.mean(accs):.4f} ({each})")
    ratio = sum(r[0] for r in theirs) / sum(r[0] for r in ours)
    gap = 100 * (np.mean([r[1] for r in ours]) - np.mean([r[1] for r in theirs]))
    print(f"wall-time ratio avalanche / lepton: {ratio:.2f}x; accuracy gap {gap:+.2f} points")


if __name__ == "__main__":
    main()
