"""EWC's Fisher: per-sample gradients with torch.func (vmap over grad) and the factored Linear-layer path, against
a per-sample Python loop.

Same model (van de Ven's 784-400-400-10 MLP), same MNIST examples, same labels; reports the largest difference
and the speed-up, measured side by side in one process.

    python bench/fisher.py [--samples 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton_research.data.benchmarks import split_mnist_5k  # noqa: E402
from lepton_research.models.mlp import MLP  # noqa: E402
from lepton_research.strategies.ewc import per_sample_fisher  # noqa: E402


def loop_fisher(model, logits_of, x, t, y):
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(logits_of(model(x[i : i + 1]), t[i : i + 1]), y[i : i + 1]).backward()
        for n, p in model.named_parameters():
            fisher[n] += p.grad.pow(2)
    return {n: f / len(x) for n, f in fisher.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    torch.manual_seed(0)
    stream = split_mnist_5k(scenario="class_il", n_tasks=1)
    data = stream[0].train
    x, y, t = data.x[: args.samples], data.y[: args.samples], data.task[: args.samples]
    model = MLP(in_shape=stream.input_shape, out_features=10).eval()

    def logits_of(out, task_ids):
        return out

    start = time.perf_counter()
    slow = loop_fisher(model, logits_of, x, t, y)
    loop_s = time.perf_counter() - start
    scale = max(slow[n].abs().max().item() for n in slow)
    print(
        f"{len(x)} samples, {sum(p.numel() for p in model.parameters())} parameters; "
        f"per-sample loop {loop_s:.2f} s; largest Fisher entry {scale:.2e}"
    )
    for chunk in args.chunks:
        start = time.perf_counter()
        fast = per_sample_fisher(model, logits_of, x, t, y, "empirical", chunk=chunk, method="vmap")
        report(f"vmap, chunks of {chunk:4d}", time.perf_counter() - start, loop_s, fast, slow)
    start = time.perf_counter()
    fast = per_sample_fisher(model, logits_of, x, t, y, "empirical", method="factored")
    report("factored (Linear layers)", time.perf_counter() - start, loop_s, fast, slow)


def report(name, seconds, loop_s, fast, slow) -> None:
    diff = max((fast[n] - slow[n]).abs().max().item() for n in fast)
    speed_up = loop_s / seconds
    print(f"{name:24s}: {seconds:.2f} s | speed-up over the loop {speed_up:7.1f}x | max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
