"""Cats vs dogs as a domain-incremental stream: T tasks, each a disjoint slice of cat and dog images under its own
shift (original, grayscale, rotation, blur, colour), so the model keeps telling cats from dogs as new kinds of
pictures arrive.

Sources: CIFAR-10's classes 3 (cat) and 5 (dog), or a folder of photos named ``cat.<n>.jpg`` / ``dog.<n>.jpg``
(the Kaggle "Dogs vs. Cats" layout), resized on load. Label 0 = cat, 1 = dog.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lepton_research.data.domains import Shift, rotate, to_float
from lepton_research.data.idx import DataFileError

CAT, DOG = 3, 5  # CIFAR-10 class ids


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, repeated over the three channels (the input shape stays (N, 3, H, W))."""
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    return luma.expand_as(x)


def blur(x: torch.Tensor) -> torch.Tensor:
    """Gaussian blur, 5x5 kernel, sigma 1.5 pixels."""
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(x, [5, 5], [1.5, 1.5])


def colour(x: torch.Tensor) -> torch.Tensor:
    """A strong colour cast: channels cycled (R, G, B) -> (B, R, G), so red fur turns blue, green grass red."""
    return x[:, [2, 0, 1]]


SHIFTS: dict[str, Shift] = {
    "original": lambda x: x,
    "grayscale": grayscale,
    "rotation": lambda x: rotate(x, 90.0),
    "blur": blur,
    "colour": colour,
}


def check_shifts(shifts: Sequence[str]) -> list[str]:
    unknown = [s for s in shifts if s not in SHIFTS]
    if not shifts or unknown:
        raise ValueError(
            f"benchmark.shifts = {list(shifts)}: unknown shift(s) {unknown or '(empty list)'}; "
            f"allowed: {', '.join(SHIFTS)}"
        )
    return list(shifts)


def cats_dogs_from_cifar(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CIFAR-10's cats (label 0) and dogs (label 1), in file order."""
    out = {}
    for s in ("train", "test"):
        keep = np.isin(arrays[f"{s}_y"], (CAT, DOG))
        out[f"{s}_x"], out[f"{s}_y"] = arrays[f"{s}_x"][keep], (arrays[f"{s}_y"][keep] == DOG).astype(np.int64)
    return out


def load_photo_folder(
    folder: str | Path, image_size: int = 32, test_fraction: float = 0.2, split_seed: int = 0
) -> dict[str, np.ndarray]:
    """``cat.*.jpg`` / ``dog.*.jpg`` photos resized to ``image_size`` squares, split per class into train/test."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"benchmark.photos_dir = {folder}: not a folder")
    files = {label: sorted(folder.glob(f"{name}.*.jpg")) for label, name in enumerate(("cat", "dog"))}
    if not files[0] or not files[1]:
        raise DataFileError(
            f"{folder}: needs photos named cat.<n>.jpg and dog.<n>.jpg (the Kaggle Dogs vs. Cats layout); "
            f"found {len(files[0])} cats and {len(files[1])} dogs"
        )
    rng = np.random.default_rng(split_seed)
    split: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for label, paths in files.items():
        images = []
        for path in paths:
            try:
                with Image.open(path) as im:
                    images.append(np.asarray(im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)))
            except (OSError, UnidentifiedImageError) as e:
                raise DataFileError(f"{path}: not a readable image ({e})") from e
        order = rng.permutation(len(images))
        n_test = int(round(len(images) * test_fraction))
        for s, idx in (("test", order[:n_test]), ("train", order[n_test:])):
            split[s][0].extend(images[i].transpose(2, 0, 1) for i in sorted(idx))
            split[s][1].extend([label] * len(idx))
    out = {}
    for s, (xs, ys) in split.items():
        out[f"{s}_x"] = np.stack(xs) if xs else np.zeros((0, 3, image_size, image_size), np.uint8)
        out[f"{s}_y"] = np.array(ys, dtype=np.int64)
    return out


def sliced_shifted(arrays: dict[str, np.ndarray], shifts: Sequence[str], seed: int) -> list[dict[str, torch.Tensor]]:
    """Task t = the t-th of len(shifts) disjoint, class-balanced slices of each split, under shift t.

    The slices come from a fixed permutation (``seed``) of each class, so every task sees different pictures.
    """
    T = len(shifts)
    rng = np.random.RandomState(seed)
    slices: dict[str, list[np.ndarray]] = {}
    for s in ("train", "test"):
        y = arrays[f"{s}_y"]
        per_class = [np.array_split(rng.permutation(np.flatnonzero(y == c)), T) for c in (0, 1)]
        if min(len(p[-1]) for p in per_class) == 0:
            raise DataFileError(f"the {s} split has too few cats or dogs for {T} disjoint tasks")
        slices[s] = [np.sort(np.concatenate([per_class[0][t], per_class[1][t]])) for t in range(T)]
    parts = []
    for t, name in enumerate(shifts):
        part = {}
        for s in ("train", "test"):
            idx = slices[s][t]
            part[f"{s}_x"] = SHIFTS[name](to_float(arrays[f"{s}_x"][idx])).contiguous()
            part[f"{s}_y"] = torch.from_numpy(arrays[f"{s}_y"][idx])
        parts.append(part)
    return parts
