"""The task loop: train each task with a fresh Trainer, evaluate every task after every task, checkpoint.

Row 0 of R is the untrained model. After task t (0-based) row t+1 is filled, logged at step t+1 and a
checkpoint is written, so a killed run resumes after the last completed task and, because every task is
seeded from (seed, task index), finishes with the same matrix as an uninterrupted run.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch

from lepton_research import metrics
from lepton_research.adaptation import Adaptation
from lepton_research.data.stream import TaskStream, TensorBatches
from lepton_research.learner import ContinualModule
from lepton_research.tracking import Tracker, is_global_zero

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


@dataclass
class Budget:
    batch_size: int
    iterations: int | None
    epochs: int


def task_seed(seed: int, t: int) -> int:
    """The seed of task t: independent of how many tasks ran before in this process (resume-safe)."""
    return (seed * 1_000_003 + t * 7919) % (2**31)


def seed_all(s: int) -> None:
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def evaluate_row(learner: ContinualModule, stream: TaskStream, k: int) -> np.ndarray:
    """Accuracy on every task's test set after k trained tasks (class-IL: over the classes seen so far)."""
    active = learner.scenario.active_mask(stream.seen_classes(k), device=stream[0].test.x.device)
    return np.array([learner.accuracy(task.test, active) for task in stream])


def save_checkpoint(
    path: Path, completed: int, R: np.ndarray, learner: ContinualModule, run_id: str | None, config_hash: str
) -> None:
    if not is_global_zero():  # under DDP the ranks hold the same state: rank 0 writes it
        return
    state = {
        "completed": completed,
        "R": R,
        "model": learner.model.state_dict(),
        "strategy": learner.strategy.state_dict(),
        "step_offset": learner.step_offset,
        # the optimizer's state only where it carries over to the next task (train.reset_optimizer=false)
        "optimizer": None if learner.reset_optimizer or learner.optimizer is None else learner.optimizer.state_dict(),
        "run_id": run_id,
        "config_hash": config_hash,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill mid-write leaves the previous checkpoint intact


def load_checkpoint(path: Path, config_hash: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"resume=true but there is no {CHECKPOINT} in {path.parent}: pass the output folder of the run to "
            f"continue, e.g. `python run.py <same overrides> resume=true hydra.run.dir={path.parent}`"
        )
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["config_hash"] != config_hash:
        raise ValueError(
            f"{path} was written by a different config (hash {state['config_hash']}, this one {config_hash}); "
            f"resume continues the same experiment only: use the same overrides as the first run"
        )
    return state


def run_stream(
    stream: TaskStream,
    learner: ContinualModule,
    make_trainer: Callable[[], L.Trainer],
    tracker: Tracker,
    *,
    seed: int,
    budget: Budget,
    output_dir: Path,
    config_hash: str,
    resume_state: dict | None = None,
    adaptation: Adaptation | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Train the stream task by task; returns the accuracy matrix R ((T+1) x T) and each task's fit seconds.
    With ``adaptation``, each task's fast-adaptation accuracies are measured (on a copy) before it is trained."""
    T = len(stream)
    ckpt_path = output_dir / CHECKPOINT
    if resume_state is None:
        R = np.full((T + 1, T), np.nan)
        R[0] = evaluate_row(learner, stream, 0)
        tracker.log_row(0, R)
        tracker.log_metrics(learner.strategy.row_metrics(learner), step=0)
        start = 0
    else:
        R, start = resume_state["R"], resume_state["completed"]
        learner.model.load_state_dict(resume_state["model"])
        learner.strategy.load_state(resume_state["strategy"])
        learner.step_offset = resume_state["step_offset"]
        if not learner.reset_optimizer:
            learner.pending_optimizer_state = resume_state.get("optimizer")
        tracker.log_missing_rows(R, start)  # a kill between checkpoint and logging left a row unlogged
        log.info("resuming after task %d of %d (from %s)", start, T, ckpt_path)
    fit_seconds = []
    for t in range(start, T):
        task = stream[t]
        seed_all(task_seed(seed, t))
        learner.active = learner.scenario.active_mask(stream.seen_classes(t + 1), device=task.train.x.device)
        learner.strategy.before_task(task, learner)
        # the previous task's Trainer sits in reference cycles with its batches (joint: a concatenated copy of the
        # data): collect it now, not whenever the cyclic GC next runs, or old copies pile up (permuted MNIST: GBs)
        gc.collect()
        if adaptation is not None:
            tracker.log_metrics(adaptation.measure(learner, task.train, t, task_seed(seed, t)), step=t)
        data = learner.strategy.task_data(stream, t)
        generator = torch.Generator().manual_seed(task_seed(seed, t))
        batches = TensorBatches(data, budget.batch_size, budget.iterations, budget.epochs, generator)
        trainer = make_trainer()
        started = time.perf_counter()
        trainer.fit(learner, train_dataloaders=batches)
        seconds = time.perf_counter() - started
        learner.step_offset += trainer.global_step
        learner.strategy.after_task(task, learner)
        R[t + 1] = evaluate_row(learner, stream, t + 1)
        fit_seconds.append(seconds)
        save_checkpoint(ckpt_path, t + 1, R, learner, tracker.run_id, config_hash)
        tracker.log_row(t + 1, R)
        tracker.log_metrics({"time/fit_seconds": seconds, **learner.strategy.row_metrics(learner)}, step=t + 1)
        loss = float(learner.last_loss) if learner.last_loss is not None else float("nan")
        log.info(
            "task %d/%d classes %s: %d steps in %.1f s (%.2f ms/step), loss %.4f | acc seen %.4f, all %.4f",
            t + 1,
            T,
            task.classes,
            trainer.global_step,
            seconds,
            1000 * seconds / max(trainer.global_step, 1),
            loss,
            metrics.average_seen_accuracy(R, t + 1),
            metrics.average_accuracy(R, t + 1),
        )
    return R, fit_seconds
