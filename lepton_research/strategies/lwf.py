"""Learning without Forgetting (Li & Hoiem 2016), as in van de Ven et al. 2019: distillation of the current
inputs through a frozen copy of the model after the previous task.

The distillation term is T^2 * KL(softmax(old / T) || softmax(new / T)) over the outputs the old model had:
in class-IL the units of the classes seen before this task, in task-IL each earlier task's head (averaged over
heads), in domain-IL the shared head. In class-IL the student's softmax runs, by default, over all active units
(old and current classes, teacher padded with zeros: van de Ven's code); ``student_units: old`` restricts it to the
old classes. Loss of task t (1-based): with ``alpha: null`` van de Ven's mix
(1/t) * CE + (1 - 1/t) * distillation; with a number, CE + alpha * distillation (Li & Hoiem's lambda_o).
``over_units: mean`` divides the distillation term by the student's number of units (an earlier revision of
van de Ven's code, the form the published Three-scenarios numbers match); ``sum``, the default, is the KL itself.
"""

from __future__ import annotations

import copy

import torch

from lepton_research.distill import OVER_UNITS, distillation_loss
from lepton_research.strategies.base import Strategy


class LwF(Strategy):
    def __init__(
        self,
        temperature: float = 2.0,
        alpha: float | None = None,
        student_units: str = "all_active",
        over_units: str = "sum",
    ) -> None:
        super().__init__()
        if over_units not in OVER_UNITS:  # checked here too, so a bad value fails before the first task trains
            raise ValueError(f"strategy.over_units = {over_units!r} is not allowed: {' or '.join(OVER_UNITS)}")
        self.over_units = over_units
        if student_units not in ("all_active", "old"):
            raise ValueError(f"strategy.student_units = {student_units!r} is not allowed: all_active or old")
        self.student_units = student_units
        if temperature <= 0:
            raise ValueError(f"strategy.temperature = {temperature} is not allowed: use a value > 0")
        if alpha is not None and alpha < 0:
            raise ValueError(f"strategy.alpha = {alpha} is not allowed: use a value >= 0, or null")
        self.temperature, self.alpha = temperature, alpha
        self._teacher: list[torch.nn.Module] = []  # a list: not a submodule, so not trained, moved or checkpointed
        self.task_number = 0  # 1-based number of the task being trained
        self._old_tasks: list[int] = []
        self._old_classes: torch.Tensor | None = None

    def before_task(self, task, learner) -> None:
        """Freeze a copy of the model as it is after the previous task (also right after a resume)."""
        self.task_number = task.index + 1
        self._teacher = []
        if task.index == 0:
            return
        teacher = copy.deepcopy(learner.model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher = [teacher]
        self._old_tasks = list(range(task.index))
        if learner.active is not None:  # class-IL: the units that were active before this task
            seen = torch.nonzero(learner.active).flatten().tolist()
            self._old_classes = torch.tensor([c for c in seen if c not in task.classes], device=learner.active.device)
            self._current_classes = torch.tensor(task.classes, device=learner.active.device)

    def distillation(self, learner, x: torch.Tensor, new_raw: torch.Tensor) -> torch.Tensor:
        """The distillation term on the current inputs; ``new_raw`` is the model's full output."""
        scenario = learner.scenario
        with torch.no_grad():
            old_raw = self._teacher[0](x)
        if scenario.name == "task_il":
            c = scenario.classes_per_task
            heads = [slice(s * c, (s + 1) * c) for s in self._old_tasks]
            return torch.stack(
                [distillation_loss(new_raw[:, h], old_raw[:, h], self.temperature, self.over_units) for h in heads]
            ).mean()
        if scenario.name == "class_il":
            old, current = self._old_classes, self._current_classes
            student = (
                new_raw[:, old] if self.student_units == "old" else torch.cat([new_raw[:, old], new_raw[:, current]], 1)
            )
            return distillation_loss(student, old_raw[:, old], self.temperature, self.over_units)
        return distillation_loss(new_raw, old_raw, self.temperature, self.over_units)

    def loss(self, learner, batch, logits, ce):
        if not self._teacher:
            return ce
        x = batch[0]
        distill = self.distillation(learner, x, learner.raw_logits)
        if self.alpha is None:
            w = 1.0 / self.task_number
            return w * ce + (1.0 - w) * distill
        return ce + self.alpha * distill
