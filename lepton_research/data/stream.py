"""Task streams: a data set's classes split into tasks, labelled for a scenario, held as tensors.

MNIST-sized data stays as tensors on the compute device and is batched there (``TensorBatches``): for a
2x400 MLP a DataLoader with workers costs more than the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lepton_research.scenarios import Scenario


@dataclass
class TensorData:
    """Inputs, scenario targets and task ids of one split, as aligned tensors."""

    x: torch.Tensor
    y: torch.Tensor
    task: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> TensorData:
        return TensorData(self.x.to(device), self.y.to(device), self.task.to(device))

    @staticmethod
    def concat(parts: Sequence[TensorData]) -> TensorData:
        return TensorData(*(torch.cat([getattr(p, f) for p in parts]) for f in ("x", "y", "task")))


@dataclass
class Task:
    index: int
    classes: list[int]
    train: TensorData
    test: TensorData


@dataclass
class TaskStream:
    """T tasks of one benchmark under one scenario."""

    name: str
    scenario: Scenario
    tasks: list[Task]
    input_shape: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __getitem__(self, t: int) -> Task:
        return self.tasks[t]

    def seen_classes(self, k: int) -> list[int]:
        """Global classes of tasks 0..k-1."""
        return [c for task in self.tasks[:k] for c in task.classes]

    def to(self, device: torch.device | str) -> TaskStream:
        tasks = [Task(t.index, t.classes, t.train.to(device), t.test.to(device)) for t in self.tasks]
        return TaskStream(self.name, self.scenario, tasks, self.input_shape)


def split_classes(
    n_classes: int, n_tasks: int, tasks: Sequence[Sequence[int]] | None = None, order_seed: int | None = None
) -> list[list[int]]:
    """The class split: ``tasks`` if given (must partition 0..n_classes-1 into equal parts), else consecutive
    classes in ``class_order(n_classes, order_seed)``."""
    if tasks is not None and order_seed is not None:
        raise ValueError("benchmark.tasks and benchmark.class_order_seed exclude each other: set one, the other null")
    if tasks is None:
        if n_tasks < 1 or n_classes % n_tasks:
            divisors = [d for d in range(1, n_classes + 1) if n_classes % d == 0]
            raise ValueError(
                f"benchmark.n_tasks = {n_tasks} does not divide the {n_classes} classes; "
                f"allowed: {', '.join(map(str, divisors))}"
            )
        c = n_classes // n_tasks
        order = class_order(n_classes, order_seed)
        return [order[i * c : (i + 1) * c] for i in range(n_tasks)]
    split = [[int(c) for c in t] for t in tasks]
    flat = sorted(c for t in split for c in t)
    if flat != list(range(n_classes)):
        raise ValueError(
            f"benchmark.tasks = {split} does not partition the classes 0..{n_classes - 1}: every class must appear "
            f"in exactly one task"
        )
    if len({len(t) for t in split}) != 1:
        raise ValueError(f"benchmark.tasks = {split}: every task must have the same number of classes")
    if len(split) != n_tasks:
        raise ValueError(f"benchmark.tasks has {len(split)} tasks but benchmark.n_tasks = {n_tasks}")
    return split


def class_order(n_classes: int, order_seed: int | None) -> list[int]:
    """The order in which classes are dealt into tasks.

    None: 0, 1, ..., n-1. An integer k: ``np.random.RandomState(k).permutation(n)``, except k = 0, which keeps the
    natural order. This is van de Ven et al.'s split-MNIST protocol (data.py: a label permutation drawn right after
    ``np.random.seed(seed)``, skipped for seed 0), so each seed sees different digit pairs.
    """
    if order_seed is None or order_seed == 0:
        return list(range(n_classes))
    relabel = np.random.RandomState(order_seed).permutation(n_classes)  # their target_transform: y -> relabel[y]
    return [int(c) for c in np.argsort(relabel)]  # the digit that becomes label 0, 1, ...


def make_stream(
    name: str, arrays: dict[str, np.ndarray], n_classes: int, split: list[list[int]], scenario_name: str
) -> TaskStream:
    """Build a TaskStream from uint8 image arrays (scaled to [0, 1], as van de Ven's ToTensor)."""
    scenario = Scenario(scenario_name, len(split), len(split[0]), n_classes)
    images = {
        s: torch.from_numpy(np.ascontiguousarray(arrays[f"{s}_x"])).float().div_(255.0) for s in ("train", "test")
    }
    labels = {s: torch.from_numpy(np.ascontiguousarray(arrays[f"{s}_y"])).long() for s in ("train", "test")}
    input_shape = tuple(images["train"].shape[1:])
    if images["train"].dim() == 3:  # add the channel axis: (N, 1, H, W)
        images = {s: v.unsqueeze(1) for s, v in images.items()}
        input_shape = (1, *input_shape)
    tasks = []
    for t, classes in enumerate(split):
        parts = {}
        for s in ("train", "test"):
            keep = torch.isin(labels[s], torch.tensor(classes))
            y = labels[s][keep]
            parts[s] = TensorData(images[s][keep], scenario.targets(y, classes), torch.full_like(y, t))
        tasks.append(Task(t, list(classes), parts["train"], parts["test"]))
    return TaskStream(name, scenario, tasks, input_shape)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the running torch.distributed job, (0, 1) outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TensorBatches:
    """Batches sliced from device tensors: ``iterations`` batches (or ``epochs`` passes) over fresh permutations.

    Each pass is a new random permutation from ``generator``; with an iteration budget, passes repeat until
    ``iterations`` batches are drawn (van de Ven's protocol: 2000 iterations of 128, whatever the task size).
    """

    def __init__(
        self, data: TensorData, batch_size: int, iterations: int | None, epochs: int, generator: torch.Generator
    ) -> None:
        self.data, self.batch_size, self.generator = data, batch_size, generator
        per_epoch = -(-len(data) // batch_size)
        self.length = iterations if iterations is not None else epochs * per_epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Under DDP every rank draws the same permutation (same generator) and keeps its own strided share of
        each batch, so the ranks together see exactly the single-process batch."""
        rank, world = rank_and_world()
        n, drawn = len(self.data), 0
        while drawn < self.length:
            order = torch.randperm(n, generator=self.generator).to(self.data.x.device)
            for start in range(0, n, self.batch_size):
                if drawn == self.length:
                    return
                idx = order[start : start + self.batch_size][rank::world]
                yield self.data.x[idx], self.data.y[idx], self.data.task[idx]
                drawn += 1
