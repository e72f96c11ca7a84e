"""One La-MAML run on full Split-MNIST (class-IL) with lepton and with Avalanche's LaMAML, side by side in one process.

Avalanche 0.6.0's `avalanche.training.supervised.lamaml.LaMAML` (not exported from `avalanche.training`) patches the
model with the `higher` package (0.2.1 works with torch 2.14); its memory is Avalanche's ReplayPlugin. Both sides
get the same data (data/MNIST/raw, pixels in [0, 1]), the same model shape (784-400-400-10 MLP), La-MAML's protocol
of one pass over 1000 random examples per task (``--per-task 0``: the whole task), incoming batches of 10 plus 10
memory examples, a 200-example memory, 5 second-order inner steps per batch (the batch in 5 slices of 2), one
meta-update per batch and Avalanche's defaults alpha_init 0.1, lr_alpha 0.25, grad_clip_norm 1.0. Where they still
differ: Avalanche averages the meta-loss over the 5 intermediate fast weights (lepton: the last one, Algorithm 1),
re-initialises the model (Kaiming normal), fills its memory class-balanced per experience after each task (lepton:
reservoir, online) and trains class-IL over all 10 output units (lepton: the classes seen so far). Reports wall
time, the ratio and both final average accuracies.

    python bench/lamaml_vs_avalanche.py [--per-task 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402

from lepton_research import cli  # noqa: E402
from lepton_research.config import register  # noqa: E402
from lepton_research.models.mlp import MLP  # noqa: E402

INNER_STEPS, BATCH, MEMORY, ALPHA_INIT, ALPHA_LR, CLIP = 5, 10, 200, 0.1, 0.25, 1.0


def run_lepton(per_task: int, tmp: str) -> tuple[float, float]:
    budget = [f"train.iterations={per_task // BATCH}"] if per_task else ["train.iterations=null", "train.epochs=1"]
    register()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "strategy=maml",
                "scenario=class_il",
                *budget,
                f"train.batch_size={BATCH}",
                "train.log_every_n_steps=500",
                "strategy.glances=1",
                f"strategy.inner_batch_size={BATCH // INNER_STEPS}",
                f"strategy.alpha_init={ALPHA_INIT}",
                f"strategy.alpha_lr={ALPHA_LR}",
                f"strategy.grad_clip_norm={CLIP}",
                f"strategy.memory_size={MEMORY}",
                f"strategy.replay_batch_size={BATCH}",
                f"tracking.uri=sqlite:///{tmp}/mlflow.db",
                "tracking.experiment=bench",
            ],
        )
    start = time.perf_counter()
    out = cli.run(cfg, output_dir=Path(tmp) / "lepton")
    return time.perf_counter() - start, out["final/avg_acc"]


def run_avalanche(per_task: int) -> tuple[float, float]:
    warnings.filterwarnings("ignore")
    from avalanche.benchmarks.classic import SplitMNIST
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.supervised.lamaml import LaMAML

    start = time.perf_counter()
    bench = SplitMNIST(
        n_experiences=5,
        fixed_class_order=list(range(10)),
        dataset_root=str(ROOT / "data"),
        train_transform=None,
        eval_transform=None,
        seed=0,
    )
    torch.manual_seed(0)
    model = MLP(in_shape=(1, 28, 28), out_features=10)
    strategy = LaMAML(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),  # unused: sync_update is False
        criterion=torch.nn.CrossEntropyLoss(),
        n_inner_updates=INNER_STEPS,
        second_order=True,
        grad_clip_norm=CLIP,
        learn_lr=True,
        lr_alpha=ALPHA_LR,
        alpha_init=ALPHA_INIT,
        train_mb_size=BATCH,
        train_epochs=1,
        eval_mb_size=1024,
        device="cpu",
        plugins=[ReplayPlugin(mem_size=MEMORY, batch_size=BATCH, batch_size_mem=BATCH)],
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
    )
    generator = torch.Generator().manual_seed(0)
    for experience in bench.train_stream:
        if per_task:
            keep = torch.randperm(len(experience.dataset), generator=generator)[:per_task]
            experience.dataset = experience.dataset.subset(keep.tolist())
        strategy.train(experience)
    results = strategy.eval(bench.test_stream)
    acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream"))
    return time.perf_counter() - start, float(acc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-task", type=int, default=1000, help="examples per task, one pass; 0: all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours, ours_acc = run_lepton(args.per_task, tmp)
    theirs, theirs_acc = run_avalanche(args.per_task)
    seen = f"{args.per_task} examples" if args.per_task else "one epoch"
    print(f"La-MAML, Split-MNIST class-IL, {seen}/task, batches of {BATCH} + {BATCH} from a memory of {MEMORY}")
    print(f"lepton    {ours:7.1f} s  final avg acc {ours_acc:.4f}")
    print(f"avalanche {theirs:7.1f} s  final avg acc {theirs_acc:.4f}")
    print(f"wall-time ratio avalanche / lepton: {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
