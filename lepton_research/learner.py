"""ContinualModule: one LightningModule for every strategy; the strategy's hooks shape each step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import lightning as L
import psutil
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

from lepton_research.data.stream import TensorData, rank_and_world
from lepton_research.scenarios import Scenario
from lepton_research.strategies.base import Strategy

log = logging.getLogger(__name__)

MetricsSink = Callable[[int, dict[str, torch.Tensor]], None]


class ContinualModule(L.LightningModule):
    """Model + strategy + scenario. ``train/loss`` (and ``train/penalty``) go to ``metrics_sink`` every
    ``log_every_n_steps`` steps as device tensors, so the hot path never waits for the host."""

    def __init__(
        self,
        model: nn.Module,
        strategy: Strategy,
        scenario: Scenario,
        optimizer: Callable[..., torch.optim.Optimizer],
        log_every_n_steps: int = 50,
        metrics_sink: MetricsSink | None = None,
        reset_optimizer: bool = True,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.strategy, self.scenario = strategy, scenario
        self.model = strategy.setup(model, scenario)
        self.optimizer_factory = optimizer
        self.log_every_n_steps = log_every_n_steps
        self.reset_optimizer = reset_optimizer
        self.augment = augment  # applied to training inputs only (after train_batch, so replayed samples too)
        self.optimizer: torch.optim.Optimizer | None = None
        self.pending_optimizer_state: dict | None = None  # restored from a checkpoint on resume
        self.metrics_sink = metrics_sink
        self.active: torch.Tensor | None = None  # output units the loss may use (class-IL: classes seen so far)
        self.step_offset = 0  # optimizer steps taken in earlier tasks: train/* steps keep counting across tasks
        self.last_loss: torch.Tensor | None = None
        self.raw_logits: torch.Tensor | None = None
        self._reported_start = False
        self.job_started = time.time()  # set by cli.run to the job's start
        if strategy.training_step is not None:
            self.automatic_optimization = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @property
    def global_step_all(self) -> int:
        """Optimizer steps since the start of the stream."""
        return self.step_offset + self.trainer.global_step

    def training_step(self, batch, batch_idx: int):
        if self.strategy.training_step is not None:
            return self.strategy.training_step(self, batch, batch_idx)
        batch = self.strategy.train_batch(batch)
        x, y, task_ids = batch
        if self.augment is not None:
            x = self.augment(x)
            batch = (x, y, task_ids)
        self.raw_logits = self.model(x)  # the full output, for strategies that need more than the scenario's units
        logits = self.scenario.select(self.raw_logits, task_ids, self.active)
        ce = F.cross_entropy(logits, y)
        loss = self.strategy.loss(self, batch, logits, ce)
        self.record(batch_idx, loss, ce)
        return loss

    def record(self, batch_idx: int, loss: torch.Tensor, ce: torch.Tensor | None = None) -> None:
        """Hand the step's losses to the sink every log_every_n_steps steps (no host sync here)."""
        self.last_loss = loss.detach()
        if self.metrics_sink is None or batch_idx % self.log_every_n_steps:
            return
        values = {"train/loss": self.last_loss}
        if ce is not None and loss is not ce:
            values["train/ce"] = ce.detach()
            values["train/penalty"] = (loss - ce).detach()
        self.metrics_sink(self.global_step_all, values)

    def on_train_start(self) -> None:
        if self.step_offset == 0 and not self._reported_start:
            self._reported_start = True
            since = time.time() - psutil.Process().create_time()
            log.info(
                "first training step %.1f s after process start (%.1f s after the job started)",
                since,
                time.time() - self.job_started,
            )

    def on_after_backward(self) -> None:
        self.strategy.after_backward(self)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        self.strategy.after_step(self)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """A fresh optimizer per task, or (reset_optimizer=False, van de Ven's default) one that keeps its state
        across tasks; parameters a strategy added since are appended as a new group."""
        if self.strategy.make_optimizer is not None:
            self.optimizer = self.strategy.make_optimizer(self)
            return self.optimizer
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer is None or self.reset_optimizer:
            self.optimizer = self.optimizer_factory(params)
            if self.pending_optimizer_state is not None:  # resume: continue with the checkpointed state
                self.optimizer.load_state_dict(self.pending_optimizer_state)
                self.pending_optimizer_state = None
            return self.optimizer
        known = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        new = [p for p in params if id(p) not in known]
        if new:
            self.optimizer.add_param_group({"params": new})
        return self.optimizer

    def accuracy(self, data: TensorData, active: torch.Tensor | None) -> float:
        return accuracy(self.model, self.scenario, data, active)


@torch.no_grad()
def accuracy(
    model: nn.Module, scenario: Scenario, data: TensorData, active: torch.Tensor | None, chunk: int = 4096
) -> float:
    """Accuracy (torchmetrics, micro) of ``model`` on ``data`` with the units in ``active`` (None: all). Under DDP
    each rank scores a strided share and the correct counts are summed across ranks: the same figure on every rank."""
    rank, world = rank_and_world()
    if world > 1:
        data = TensorData(data.x[rank::world], data.y[rank::world], data.task[rank::world])
    was_training = model.training
    model.eval()
    preds = torch.cat(
        [
            scenario.select(model(data.x[i : i + chunk]), data.task[i : i + chunk], active).argmax(1)
            for i in range(0, len(data), chunk)
        ]
    )
    model.train(was_training)
    if world == 1:
        return score(preds, data.y, scenario)
    import torch.distributed as dist

    counts = torch.tensor([(preds == data.y).sum().item(), len(data)], dtype=torch.float64)
    dist.all_reduce(counts)
    return float(torch.tensor(counts[0] / counts[1], dtype=torch.float32))


def score(preds: torch.Tensor, y: torch.Tensor, scenario: Scenario) -> float:
    """The one accuracy figure (torchmetrics, micro) that R, the student rows and the deployed model all use."""
    n_out = scenario.classes_per_task if scenario.name != "class_il" else scenario.n_classes
    return float(multiclass_accuracy(preds, y, num_classes=n_out, average="micro"))
