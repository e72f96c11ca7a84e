"""After the stream: distil the trained model into a smaller student (Hinton, Vinyals & Dean 2015) and/or quantise
it, evaluate the result on every task like the teacher, and measure what was bought (parameters, bytes, latency).

The student learns from alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE on one of
three data sources: ``all`` (every task's training data: offline compression), ``buffer`` (the strategy's memory,
e.g. replay's), ``last_task``. Training runs through Lightning like every task, with the run's compute target.
"""

from __future__ import annotations

import copy
import functools
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lepton_research.data.stream import TaskStream, TensorBatches, TensorData
from lepton_research.distill import distillation_loss
from lepton_research.learner import MetricsSink, accuracy
from lepton_research.scenarios import Scenario

log = logging.getLogger(__name__)

METHODS = ("none", "kd")
DATA_SOURCES = ("all", "buffer", "last_task")
QUANTIZE = ("none", "dynamic_int8")


class DistillModule(L.LightningModule):
    """Trains ``student`` to match a frozen ``teacher`` on the scenario's logits (task-IL: the sample's head)."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        scenario: Scenario,
        optimizer: Callable[..., torch.optim.Optimizer],
        temperature: float,
        alpha: float,
        log_every_n_steps: int = 50,
        metrics_sink: MetricsSink | None = None,
        step_offset: int = 0,
    ) -> None:
        super().__init__()
        self.student, self.scenario, self.optimizer_factory = student, scenario, optimizer
        self._teacher = [teacher.eval()]  # a list: not a submodule, so neither trained nor moved by Lightning
        self.temperature, self.alpha = temperature, alpha
        self.log_every_n_steps, self.metrics_sink, self.step_offset = log_every_n_steps, metrics_sink, step_offset
        self.last_loss: torch.Tensor | None = None

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, task_ids = batch
        student = self.scenario.select(self.student(x), task_ids, None)
        with torch.no_grad():
            teacher = self.scenario.select(self._teacher[0](x), task_ids, None)
        loss = self.alpha * distillation_loss(student, teacher, self.temperature)
        if self.alpha < 1:
            loss = loss + (1 - self.alpha) * F.cross_entropy(student, y)
        self.last_loss = loss.detach()
        if self.metrics_sink is not None and batch_idx % self.log_every_n_steps == 0:
            self.metrics_sink(self.step_offset + self.trainer.global_step, {"compress/loss": self.last_loss})
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory([p for p in self.student.parameters() if p.requires_grad])


def distillation_data(source: str, stream: TaskStream, memory: TensorData | None) -> TensorData:
    """The examples the student learns from."""
    if source == "all":
        return TensorData.concat([task.train for task in stream])
    if source == "last_task":
        return stream[-1].train
    if memory is None or len(memory) == 0:
        raise ValueError(
            "compress.data = 'buffer' needs a strategy that keeps a memory of examples (e.g. strategy=replay); "
            "use compress.data=all or last_task"
        )
    return memory


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """PyTorch dynamic quantisation: Linear weights stored as int8, activations quantised on the fly (CPU only)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def serialized_bytes(model: nn.Module) -> int:
    """Size of the model's state_dict as torch.save writes it (what a deployment ships)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@torch.no_grad()
def latencies_ms(models: dict[str, nn.Module], x: torch.Tensor, repeats: int = 30) -> dict[str, float]:
    """Median CPU inference time of one batch per model, timed side by side (interleaved) in this process."""
    x = x.cpu()
    models = {k: m.cpu().eval() for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():  # warm-up
        m(x)
    for _ in range(repeats):
        for k, m in models.items():
            start = time.perf_counter()
            m(x)
            times[k].append(1000 * (time.perf_counter() - start))
    return {k: float(np.median(v)) for k, v in times.items()}


def evaluate(model: nn.Module, scenario: Scenario, stream: TaskStream) -> np.ndarray:
    """Accuracy on every task's test set at the end of the stream, computed exactly as the last row of R, on the
    stream's device (the model is moved there)."""
    device = stream[0].test.x.device
    model.to(device)
    active = scenario.active_mask(stream.seen_classes(len(stream)), device=device)
    return np.array([accuracy(model, scenario, task.test, active) for task in stream])


@dataclass
class CompressResult:
    model: nn.Module  # what gets deployed: the student, quantised if asked, else the trained model
    metrics: dict[str, float]


def compress(
    cfg,
    teacher: nn.Module,
    student: nn.Module | None,
    stream: TaskStream,
    memory: TensorData | None,
    make_trainer: Callable[[], L.Trainer],
    *,
    optimizer: Callable[..., torch.optim.Optimizer] | None,
    seed: int,
    metrics_sink: MetricsSink | None = None,
    step_offset: int = 0,
) -> CompressResult:
    """Run the configured tail (``cfg`` is the ``compress`` node); metrics are logged at step T by the caller."""
    scenario = stream.scenario
    teacher_acc = evaluate(teacher, scenario, stream)
    out: dict[str, float] = {
        "compress/teacher_params": n_parameters(teacher),
        "compress/teacher_bytes": serialized_bytes(teacher),
    }
    final = teacher
    if cfg.method == "kd":
        data = distillation_data(cfg.data, stream, memory)
        module = DistillModule(
            teacher,
            student,
            scenario,
            optimizer=optimizer or functools.partial(torch.optim.Adam, lr=1e-3),
            temperature=cfg.temperature,
            alpha=cfg.alpha,
            metrics_sink=metrics_sink,
            step_offset=step_offset,
        )
        batches = TensorBatches(data, cfg.batch_size, cfg.iterations, 1, torch.Generator().manual_seed(seed))
        started = time.perf_counter()
        trainer = make_trainer()
        trainer.fit(module, train_dataloaders=batches)
        seconds = time.perf_counter() - started
        student = module.student.eval()
        student_acc = evaluate(student, scenario, stream)
        out.update({f"student/acc/task_{j}": float(a) for j, a in enumerate(student_acc)})
        out.update(
            {
                "student/acc/avg": float(student_acc.mean()),
                "student/retention": float(student_acc.mean() / max(teacher_acc.mean(), 1e-12)),
                "compress/student_params": n_parameters(student),
                "compress/student_bytes": serialized_bytes(student),
                "compress/param_ratio": n_parameters(student) / n_parameters(teacher),
                "compress/fit_seconds": seconds,
            }
        )
        log.info(
            "distilled into a %d-parameter student (%.1f%% of the teacher) on '%s' data, %d steps in %.1f s: "
            "student avg acc %.4f vs teacher %.4f (retention %.4f)",
            out["compress/student_params"],
            100 * out["compress/param_ratio"],
            cfg.data,
            trainer.global_step,
            seconds,
            out["student/acc/avg"],
            teacher_acc.mean(),
            out["student/retention"],
        )
        final = student
    if cfg.quantize == "dynamic_int8":
        float_model, float_acc = final, evaluate(final, scenario, stream)
        final = quantize_dynamic_int8(float_model)
        q_acc = evaluate(final, scenario, stream.to("cpu"))
        out.update({f"quantized/acc/task_{j}": float(a) for j, a in enumerate(q_acc)})
        out.update(
            {
                "quantized/acc/avg": float(q_acc.mean()),
                "quantized/acc_drop": float(float_acc.mean() - q_acc.mean()),
                "compress/quantized_bytes": serialized_bytes(final),
                "compress/size_ratio": serialized_bytes(final) / serialized_bytes(float_model),
            }
        )
        log.info(
            "dynamic int8: avg acc %.4f (drop %.4f), %d bytes (%.2f of the float model)",
            out["quantized/acc/avg"],
            out["quantized/acc_drop"],
            out["compress/quantized_bytes"],
            out["compress/size_ratio"],
        )
    if final is not teacher:
        tests = torch.cat([task.test.x for task in stream])
        x = tests[torch.arange(cfg.latency_batch, device=tests.device) % len(tests)]
        ms = latencies_ms({"teacher": copy.deepcopy(teacher), "final": copy.deepcopy(final)}, x, cfg.latency_repeats)
        out.update(
            {
                "compress/teacher_latency_ms": ms["teacher"],
                "compress/latency_ms": ms["final"],
                "compress/latency_ratio": ms["final"] / ms["teacher"],
            }
        )
        log.info(
            "CPU latency per batch of %d: %.3f ms vs the teacher's %.3f ms (ratio %.3f)",
            len(x),
            ms["final"],
            ms["teacher"],
            out["compress/latency_ratio"],
        )
    return CompressResult(final, out)
