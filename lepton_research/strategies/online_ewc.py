"""Online EWC (Schwarz et al. 2018, as in van de Ven et al. 2019): one running Fisher, one anchor.

After each task F <- gamma * F + F_task and the anchor moves to the task's final weights; the penalty is
lambda/2 * gamma * F (theta - theta*)^2 (van de Ven's code decays the stored Fisher once more in the loss).
"""

from __future__ import annotations

from lepton_research.strategies.base import buffer_key
from lepton_research.strategies.ewc import EWC


class OnlineEWC(EWC):
    def __init__(
        self,
        lambda_: float,
        gamma: float,
        fisher: str = "argmax",
        fisher_samples: int | None = None,
        fisher_chunk: int = 8,
        fisher_method: str = "auto",
    ) -> None:
        super().__init__(lambda_, fisher, fisher_samples, fisher_chunk, fisher_method)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"strategy.gamma = {gamma} is not allowed: use a decay in [0, 1]")
        self.gamma = gamma

    def after_task(self, task, learner) -> None:
        fisher = self.estimate_fisher(task, learner)
        buffers = dict(self.named_buffers())
        for n in fisher:
            old = buffers.get(f"fisher_0_{buffer_key(n)}")
            if old is not None:
                fisher[n] = fisher[n] + self.gamma * old
        self.consolidate(0, fisher, learner)

    def scale(self) -> float:
        return self.gamma
