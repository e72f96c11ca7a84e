"""Small files in CIFAR-10's exact ``cifar-10-batches-py`` format, written by tests (they are not CIFAR images).

Each image is noise around a class-specific colour, so a model can learn the labels and a test can check that it
did; the keys, dtypes, shapes and label lists are those of the real release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lepton_research.data.cifar import FOLDER, TEST_FILES, TRAIN_FILES, write_batch


def fake_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    palette = np.random.default_rng(123).integers(30, 226, size=(10, 3))  # one colour per class
    noise = rng.normal(0, 25, size=(len(labels), 3, 32, 32))
    return np.clip(palette[labels][:, :, None, None] + noise, 0, 255).astype(np.uint8)


def write_cifar_files(data_dir: Path, per_class_train: int = 15, per_class_test: int = 6, seed: int = 0) -> Path:
    """data_dir/cifar-10-batches-py with data_batch_1..5 (per_class_train images of each class in all) and
    test_batch (per_class_test of each class)."""
    rng = np.random.default_rng(seed)
    train_labels = rng.permutation(np.repeat(np.arange(10), per_class_train))
    for name, labels in zip(TRAIN_FILES, np.array_split(train_labels, len(TRAIN_FILES)), strict=True):
        write_batch(data_dir / FOLDER / name, fake_images(labels, rng), labels.tolist(), f"training batch {name}")
    test_labels = rng.permutation(np.repeat(np.arange(10), per_class_test))
    write_batch(data_dir / FOLDER / next(iter(TEST_FILES)), fake_images(test_labels, rng), test_labels.tolist())
    return data_dir / FOLDER
