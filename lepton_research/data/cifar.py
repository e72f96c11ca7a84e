"""CIFAR-10 (Krizhevsky 2009) in its real ``cifar-10-batches-py`` format: pickled ``data_batch_1..5``, ``test_batch``.

Each file is a pickled dict with ``b"data"`` (uint8, N x 3072: 1024 red, 1024 green, 1024 blue values, row-major
32x32) and ``b"labels"`` (a list of N ints in 0..9). Files live in ``<data_dir>/cifar-10-batches-py`` (where
torchvision puts them). There is no offline source of CIFAR-10 here: with ``download=True`` torchvision's
downloader fetches it where there is internet; otherwise the files must be present. Every file is checked against
the canonical MD5 (torchvision's list) unless ``verify=False`` (a user's own copy in the same format).
"""

from __future__ import annotations

import logging
import pickle
import socket
from pathlib import Path

import numpy as np

from lepton_research.data.idx import DataFileError
from lepton_research.data.mnist import md5

log = logging.getLogger(__name__)

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
}
TEST_FILES = {"test_batch": "40351d587109b95175f43aff81a1287e"}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def batches_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / FOLDER


def missing_files(data_dir: str | Path) -> list[str]:
    return [n for n in (*TRAIN_FILES, *TEST_FILES) if not (batches_dir(data_dir) / n).is_file()]


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images (N, 3, 32, 32) uint8, labels (N,) int64; a defect raises DataFileError naming it."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataFileError(f"{path}: not a readable CIFAR-10 batch (pickle load failed: {e!r})") from e
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise DataFileError(f"{path}: a CIFAR-10 batch is a dict with b'data' and b'labels'; found {keys}")
    data, labels = np.asarray(entry[b"data"]), np.asarray(entry[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFileError(
            f"{path}: b'data' has dtype {data.dtype} and shape {data.shape}; CIFAR-10's is uint8 (N, 3072)"
        )
    if labels.shape != (data.shape[0],):
        raise DataFileError(f"{path}: {labels.shape} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(f"{path}: labels outside 0..9 (min {labels.min()}, max {labels.max()})")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(data_dir: str | Path, verify: bool = True, download: bool = True) -> dict[str, np.ndarray]:
    """CIFAR-10 as uint8 arrays: train_x (50000, 3, 32, 32), train_y, test_x (10000, 3, 32, 32), test_y."""
    if missing_files(data_dir) and download:
        _download(data_dir)
    missing = missing_files(data_dir)
    if missing:
        raise DataFileError(
            f"CIFAR-10 file(s) missing in {batches_dir(data_dir).resolve()}: {', '.join(missing)}. There is no offline "
            f"source of CIFAR-10: run where there is internet (benchmark.download=true uses torchvision's downloader) "
            f"or copy the extracted cifar-10-python.tar.gz (the folder {FOLDER}) into {Path(data_dir).resolve()}."
        )
    out = {}
    for split, files in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        xs, ys = [], []
        for name, expected in files.items():
            path = batches_dir(data_dir) / name
            if verify and (actual := md5(path)) != expected:
                raise DataFileError(
                    f"{path}: checksum mismatch (md5 {actual}, CIFAR-10's is {expected}); the file is corrupt or not "
                    f"the canonical release. Replace it, or set benchmark.verify=false for your own copy in this format"
                )
            x, y = read_batch(path)
            xs.append(x)
            ys.append(y)
        out[f"{split}_x"], out[f"{split}_y"] = np.concatenate(xs), np.concatenate(ys)
    return out


def _download(data_dir: str | Path) -> None:
    """torchvision's downloader (checks the archive's MD5); logs and returns when offline."""
    from torchvision.datasets import CIFAR10

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        CIFAR10(root=str(data_dir), download=True)
    except Exception as e:  # offline: URLError, timeouts, refused connections
        log.info("CIFAR-10 download unavailable (%s)", e.__class__.__name__)
    finally:
        socket.setdefaulttimeout(previous)


def write_batch(path: Path, images: np.ndarray, labels: list[int] | np.ndarray, batch_label: str = "") -> None:
    """Write images (N, 3, 32, 32) uint8 as one batch file in CIFAR-10's exact format (tests, users' own data)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    entry = {
        b"batch_label": batch_label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), 3072),
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(images))],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)  # the release was written by Python 2's cPickle
