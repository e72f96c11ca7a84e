"""The Strategy hooks. A strategy is an nn.Module, so its buffers move with the model and are checkpointed.

Every hook is a no-op by default. ``setup`` runs once, when the learner is built (it may check the scenario,
create state shaped like the model, or wrap the model: progressive columns). Then, for each task:
``task_data`` -> ``before_task`` -> per step (``train_batch``, ``loss``, ``after_backward``, ``after_step``)
-> ``after_task``. ``training_step`` replaces the standard step (manual optimisation, e.g. MAML), and
``make_optimizer`` replaces the configured optimizer. ``row_metrics`` is logged with every row of R.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from lepton_research.data.stream import Task, TaskStream, TensorData
    from lepton_research.learner import ContinualModule
    from lepton_research.scenarios import Scenario

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def buffer_key(param_name: str) -> str:
    """A parameter's name as part of a buffer name (buffers may not contain dots)."""
    return param_name.replace(".", "__")


class Strategy(nn.Module):
    """Base class: fine-tuning on each task in turn (no protection against forgetting)."""

    scenarios: ClassVar[tuple[str, ...]] = ("task_il", "domain_il", "class_il")  # the scenarios it can run
    scenario_reason: ClassVar[str] = ""  # why the others are not allowed (shown in the error)

    def setup(self, model: nn.Module, scenario: Scenario) -> nn.Module:
        """Called once when the learner is built; returns the model to train (default: ``model`` itself)."""
        return model

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

    training_step = None  # a strategy may define training_step(learner, batch, batch_idx) to replace the step
    make_optimizer = None  # a strategy may define make_optimizer(learner) to replace the configured optimizer

    def row_metrics(self, learner: ContinualModule) -> dict[str, float]:
        """Logged with each row of R, at step = tasks trained (default: the model's parameter count)."""
        return {"model/params": float(sum(p.numel() for p in learner.model.parameters()))}

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
