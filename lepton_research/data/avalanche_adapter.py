"""Any Avalanche benchmark as our TaskStream, so Avalanche's catalogue runs with our strategies and tracking.

``conf/benchmark/avalanche.yaml`` names the benchmark by ``_target_`` (Hydra builds it first and hands the object
here). Each experience of its ``train_stream`` / ``test_stream`` becomes one Task: its samples are read once into
tensors (in the experience's own order) and labelled for our scenario from the global class ids. Benchmarks whose
experiences hold different numbers of classes do not fit our scenarios and are refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from lepton_research.data.stream import Task, TaskStream, TensorData
from lepton_research.scenarios import Scenario


def read_all(dataset: Any, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and global labels of an Avalanche dataset, as two tensors (its __getitem__ gives x, y[, t])."""
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        xs.append(batch[0].float())
        ys.append(torch.as_tensor(batch[1]).long())
    return torch.cat(xs), torch.cat(ys)


def task_classes(experience: Any, order: list[int] | None) -> list[int]:
    """The experience's classes in the benchmark's class order (the first gets task-local label 0)."""
    classes = sorted(int(c) for c in experience.classes_in_this_experience)
    return [c for c in order if c in classes] if order else classes


def from_avalanche(*, scenario: str, benchmark: Any, name: str = "avalanche") -> TaskStream:
    """Convert an Avalanche benchmark object (e.g. ``avalanche.benchmarks.classic.SplitMNIST(...)``)."""
    train_exps, test_exps = list(benchmark.train_stream), list(benchmark.test_stream)
    if len(train_exps) != len(test_exps):
        raise ValueError(
            f"benchmark.benchmark has {len(train_exps)} train and {len(test_exps)} test experiences; "
            f"our streams need one test set per task"
        )
    order = [int(c) for c in getattr(benchmark, "classes_order", None) or []]
    splits = [task_classes(e, order) for e in train_exps]
    sizes = {len(c) for c in splits}
    if len(sizes) != 1:
        raise ValueError(
            f"benchmark.benchmark: experiences hold {sorted(sizes)} classes; our scenarios need the same number "
            f"of classes in every experience (classes per experience: {splits})"
        )
    n_classes = int(getattr(benchmark, "n_classes", 0) or max(c for s in splits for c in s) + 1)
    sc = Scenario(scenario, len(splits), sizes.pop(), n_classes)
    tasks, input_shape = [], None
    for t, (classes, train_exp, test_exp) in enumerate(zip(splits, train_exps, test_exps, strict=True)):
        parts = {}
        for split, exp in (("train", train_exp), ("test", test_exp)):
            x, y = read_all(exp.dataset)
            if set(y.unique().tolist()) - set(classes):
                raise ValueError(f"benchmark.benchmark: {split} experience {t} has labels outside {classes}")
            parts[split] = TensorData(x, sc.targets(y, classes), torch.full_like(y, t))
        input_shape = input_shape or tuple(parts["train"].x.shape[1:])
        tasks.append(Task(t, classes, parts["train"], parts["test"]))
    return TaskStream(name, sc, tasks, input_shape)
