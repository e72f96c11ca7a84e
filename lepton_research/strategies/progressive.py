"""Progressive neural networks (Rusu et al. 2016): a new column per task, earlier columns frozen, lateral adapters.

Zero forgetting by construction, paid for in parameters: each task adds a column of the base model's size plus its
adapters (``model/params`` and ``model/params/column_{k}`` at every step show the price). The task id picks the
column, so only task-IL is possible. The network lives in ``models/progressive.py``; this file only grows it.
"""

from __future__ import annotations

from lepton_research.models.progressive import ProgressiveNet
from lepton_research.strategies.base import Strategy


class Progressive(Strategy):
    scenarios = ("task_il",)
    scenario_reason = (
        "a progressive net answers with the column of the task, so it needs the task id at test time, which only "
        "task-IL gives (domain-IL and class-IL hide it)."
    )

    def __init__(self, adapter_width: int | None = None, alpha_init: float = 0.1) -> None:
        super().__init__()
        if adapter_width is not None and adapter_width < 1:
            raise ValueError(f"strategy.adapter_width = {adapter_width} is not allowed: use >= 1, or null")
        self.adapter_width, self.alpha_init = adapter_width, alpha_init

    def setup(self, model, scenario):
        return ProgressiveNet(model, scenario.n_tasks, scenario.classes_per_task, self.adapter_width, self.alpha_init)

    def before_task(self, task, learner) -> None:
        """Task t trains column t (added here; columns 0..t-1 are frozen). Column 0 is the model as built."""
        learner.model.grow_to(task.index + 1)
        learner.model.freeze_before(task.index)

    def row_metrics(self, learner) -> dict[str, float]:
        per_column = learner.model.column_params()
        return {
            **super().row_metrics(learner),
            **{f"model/params/column_{k}": float(n) for k, n in enumerate(per_column)},
        }
