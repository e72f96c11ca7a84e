"""Fast adaptation: how well the model learns a new task from a few SGD steps, before it trains on it.

Before task t is trained, a copy of the model (the real weights are never touched) takes n plain SGD steps on
batches from task t's training set, and its accuracy is scored on a held-out slice of that training set (the test
set stays for R). The step counts are cumulative (the copy scored after 1 step goes on to 5, then 20), and the
batches come from their own generator, so switching the measure on changes nothing else in a run.
Logged as ``adapt/task_{t}/steps_{n}`` at step t (tasks trained so far), for every strategy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from lepton_research.data.stream import TensorData
    from lepton_research.learner import ContinualModule


@dataclass(frozen=True)
class Adaptation:
    steps: tuple[int, ...]
    lr: float = 0.1
    batch_size: int = 10
    holdout: int = 1000

    @staticmethod
    def from_config(node) -> Adaptation | None:
        """From the ``eval`` config node; None when ``eval.adaptation_steps`` is empty (the measure is off)."""
        if not node.adaptation_steps:
            return None
        return Adaptation(
            tuple(sorted({int(n) for n in node.adaptation_steps})),
            float(node.adaptation_lr),
            int(node.adaptation_batch_size),
            int(node.adaptation_holdout),
        )

    def measure(self, learner: ContinualModule, data: TensorData, t: int, seed: int) -> dict[str, float]:
        """``adapt/task_{t}/steps_{n}`` for every n in ``steps``, from a copy of ``learner.model``."""
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(data), generator=generator).to(data.x.device)
        n_held = min(self.holdout, len(data) // 2)
        held, pool = order[:n_held], order[n_held:]
        model = copy.deepcopy(learner.model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(trainable, lr=self.lr)
        out, done = {}, 0
        for n in self.steps:
            model.train()
            for _ in range(n - done):
                idx = pool[torch.randint(len(pool), (self.batch_size,), generator=generator).to(pool.device)]
                logits = learner.scenario.select(model(data.x[idx]), data.task[idx], learner.active)
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(logits, data.y[idx]).backward()
                optimizer.step()
            done = n
            out[f"adapt/task_{t}/steps_{n}"] = accuracy(learner, model, data, held)
        return out


@torch.no_grad()
def accuracy(learner: ContinualModule, model: torch.nn.Module, data: TensorData, idx: torch.Tensor) -> float:
    model.eval()
    logits = learner.scenario.select(model(data.x[idx]), data.task[idx], learner.active)
    return float((logits.argmax(1) == data.y[idx]).float().mean())
