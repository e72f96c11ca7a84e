"""The three continual-learning scenarios of van de Ven & Tolias (2019): what the model predicts and how.

| scenario  | target                      | output units                 | task id at test time |
| task_il   | class within the task       | one head per task (T * c)    | given                |
| domain_il | class within the task       | one shared head (c)          | not given            |
| class_il  | global class                | one head over all classes    | not given            |

In class-IL the loss and the prediction use only the units of the classes seen so far (van de Ven's
"active classes"), so an untrained unit of a future class cannot win.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SCENARIOS = ("task_il", "domain_il", "class_il")


@dataclass(frozen=True)
class Scenario:
    name: str
    n_tasks: int
    classes_per_task: int
    n_classes: int

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"scenario {self.name!r} is unknown; choose one of {', '.join(SCENARIOS)}")

    @property
    def out_features(self) -> int:
        """Width of the model's output layer."""
        return {
            "task_il": self.n_tasks * self.classes_per_task,
            "domain_il": self.classes_per_task,
            "class_il": self.n_classes,
        }[self.name]

    def targets(self, global_y: torch.Tensor, task_classes: list[int]) -> torch.Tensor:
        """Map global class labels of one task to what the model is trained to predict."""
        if self.name == "class_il":
            return global_y.clone()
        lookup = torch.full((self.n_classes,), -1, dtype=torch.long)
        lookup[torch.tensor(task_classes)] = torch.arange(len(task_classes))
        return lookup[global_y]

    def active_mask(self, seen_classes: list[int], device: torch.device | str = "cpu") -> torch.Tensor | None:
        """Boolean mask over output units that may be predicted (class-IL only; None = all units)."""
        if self.name != "class_il" or not seen_classes:
            return None
        mask = torch.zeros(self.n_classes, dtype=torch.bool, device=device)
        mask[torch.tensor(seen_classes, device=device)] = True
        return mask

    def select(self, logits: torch.Tensor, task_ids: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        """The logits that the loss and the prediction use, per sample."""
        if self.name == "task_il":
            per_task = logits.view(logits.shape[0], self.n_tasks, self.classes_per_task)
            index = task_ids.view(-1, 1, 1).expand(-1, 1, self.classes_per_task)
            return per_task.gather(1, index).squeeze(1)  # gather, not fancy indexing: works under vmap
        if active is not None:
            return logits.masked_fill(~active, float("-inf"))
        return logits
