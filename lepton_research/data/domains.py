"""Domain-incremental streams: the same labels in every task, each task under its own input transformation.

Task t's labels are numbered ``t * c + y`` (c labels per task) as global classes, so the three scenarios come out
of ``Scenario`` unchanged: domain-IL predicts y with one shared c-way head, task-IL has one c-way head per task
(T * c units), class-IL tells all T * c (task, label) pairs apart (van de Ven et al. 2019's permuted-MNIST
class-IL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from lepton_research.data.stream import Task, TaskStream, TensorData
from lepton_research.scenarios import Scenario

Shift = Callable[[torch.Tensor], torch.Tensor]  # float images (N, C, H, W) in [0, 1] -> same shape


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) -> float (N, C, H, W) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.unsqueeze(1) if x.dim() == 3 else x


def domain_stream(name: str, parts: Sequence[dict[str, torch.Tensor]], n_labels: int, scenario_name: str) -> TaskStream:
    """A TaskStream from per-task splits ``{"train_x", "train_y", "test_x", "test_y"}`` (labels 0..n_labels-1)."""
    T = len(parts)
    scenario = Scenario(scenario_name, T, n_labels, T * n_labels)
    tasks = []
    for t, part in enumerate(parts):
        classes = list(range(t * n_labels, (t + 1) * n_labels))
        split = {}
        for s in ("train", "test"):
            y = part[f"{s}_y"].long() + t * n_labels
            split[s] = TensorData(part[f"{s}_x"], scenario.targets(y, classes), torch.full_like(y, t))
        tasks.append(Task(t, classes, split["train"], split["test"]))
    return TaskStream(name, scenario, tasks, tuple(parts[0]["train_x"].shape[1:]))


def permutations(n_tasks: int, n_pixels: int, seed: int) -> list[np.ndarray | None]:
    """Task 0 keeps the pixels in place, tasks 1.. get fixed random permutations (van de Ven et al.'s data.py)."""
    rng = np.random.RandomState(seed)
    return [None] + [rng.permutation(n_pixels) for _ in range(n_tasks - 1)]


def permute(x: torch.Tensor, perm: np.ndarray | None) -> torch.Tensor:
    if perm is None:
        return x
    n = x.shape[0]
    return x.reshape(n, -1)[:, torch.from_numpy(perm)].reshape(x.shape)


def rotation_angles(n_tasks: int, seed: int, max_degrees: float = 180.0) -> list[float]:
    """Task 0 upright, tasks 1.. at fixed random angles drawn uniformly from [0, max_degrees)."""
    rng = np.random.RandomState(seed)
    return [0.0] + [float(a) for a in rng.uniform(0.0, max_degrees, n_tasks - 1)]


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images about their centre (bilinear, zero fill), counter-clockwise."""
    if degrees == 0.0:
        return x
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import rotate as tv_rotate

    return tv_rotate(x, degrees, interpolation=InterpolationMode.BILINEAR)


def transformed_copies(arrays: dict[str, np.ndarray], shifts: Sequence[Shift]) -> list[dict[str, torch.Tensor]]:
    """The whole data set once per task, each copy under its own shift (permuted / rotated MNIST)."""
    base = {s: to_float(arrays[f"{s}_x"]) for s in ("train", "test")}
    labels = {s: torch.from_numpy(arrays[f"{s}_y"]).long() for s in ("train", "test")}
    return [
        {f"{s}_x": shift(base[s]).contiguous() for s in base} | {f"{s}_y": labels[s] for s in labels}
        for shift in shifts
    ]
