"""The Strategy hooks. A strategy is an nn.Module, so its buffers move with the model and are checkpointed.

Every hook is a no-op by default; the learner calls them in this order for each task:
``task_data`` -> ``before_task`` -> per step (``train_batch``, ``loss``, ``after_backward``, ``after_step``)
-> ``after_task``. ``training_step`` replaces the standard step (manual optimisation, e.g. MAML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from lepton_research.data.stream import Task, TaskStream, TensorData
    from lepton_research.learner import ContinualModule

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def buffer_key(param_name: str) -> str:
    """A parameter's name as part of a buffer name (buffers may not contain dots)."""
    return param_name.replace(".", "__")


class Strategy(nn.Module):
    """Base class: fine-tuning on each task in turn (no protection against forgetting)."""

    def task_data(self, stream: TaskStream, t: int) -> TensorData:
        """The data that task t is trained on (default: task t's own training set)."""
        return stream[t].train

    def before_task(self, task: Task, learner: ContinualModule) -> None:
        """Called before fitting a task."""

    def train_batch(self, batch: Batch) -> Batch:
        """Called on each batch before the forward pass (e.g. replay mixes in buffer samples)."""
        return batch

    def loss(self, learner: ContinualModule, batch: Batch, logits: torch.Tensor, ce: torch.Tensor) -> torch.Tensor:
        """The total loss of a step, given the cross-entropy ``ce`` (default: ``ce``)."""
        return ce

    def after_backward(self, learner: ContinualModule) -> None:
        """Called after backward, before the optimizer step."""

    def after_step(self, learner: ContinualModule) -> None:
        """Called after each optimizer step."""

    def after_task(self, task: Task, learner: ContinualModule) -> None:
        """Called after fitting a task, before it is evaluated."""

    training_step = None  # a strategy may define training_step(learner, batch) to replace the standard step

    keeps_memory = False  # True where memory_data() returns the examples the strategy keeps (e.g. replay)

    def memory_data(self) -> TensorData | None:
        """The examples this strategy keeps (a replay memory), for ``compress.data=buffer``; None if none."""
        return None

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a checkpointed state_dict; buffers created or resized during training are re-registered."""
        for name, value in state.items():
            module_path, _, leaf = name.rpartition(".")
            module = self.get_submodule(module_path) if module_path else self
            if leaf not in dict(module.named_parameters(recurse=False)):
                module.register_buffer(leaf, torch.empty_like(value))
        self.load_state_dict(state)
