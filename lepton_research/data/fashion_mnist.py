"""Fashion-MNIST (Xiao et al. 2017): the full 60k/10k set from IDX files in torchvision's layout.

Files live in ``<data_dir>/FashionMNIST/raw`` (plain or ``.gz``). ``python -m lepton_research.data fetch
fashion_mnist`` puts them there: torchvision's downloader where there is internet, else Debian's package
``dataset-fashion-mnist`` (``apt-get download`` + ``dpkg-deb -x``; it installs the four files under
``/usr/share/datasets/fashion-mnist``). A file passes the check if its MD5 is Zalando's published MD5 of the
``.gz`` release (what torchvision downloads), or if the MD5 of its decompressed IDX content is the one measured on
Debian's package: Debian recompressed the ``.gz`` files, so their own MD5s differ from Zalando's.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lepton_research.data.idx import DataFileError, read_idx_set
from lepton_research.data.mnist import md5

log = logging.getLogger(__name__)

FETCH_COMMAND = "python -m lepton_research.data fetch fashion_mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = "usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# name -> (shape, md5 of the decompressed IDX file, Zalando's md5 of the .gz file). The first was measured on Debian's
# dataset-fashion-mnist 0.0~git20200523.55506a9-1 (Zalando's repository at that commit); the second is the one
# Zalando's README and torchvision's FashionMNIST.resources publish.
FILES = {
    "train-images-idx3-ubyte": (
        (60000, 28, 28),
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    "train-labels-idx1-ubyte": ((60000,), "9018921c3c673c538a1fc5bad174d6f9", "25c81989df183df01b3e8a0aad5dffbe"),
    "t10k-images-idx3-ubyte": (
        (10000, 28, 28),
        "8181f5470baa50b63fa0f6fddb340f0a",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    "t10k-labels-idx1-ubyte": ((10000,), "15d484375f8d13e6eb1aabb0c3f46965", "bb300cfdad3c16e7a12a480ee83cd310"),
}


def raw_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "FashionMNIST" / "raw"


def fetch_command(data_dir: str | Path) -> str:
    return FETCH_COMMAND if str(data_dir) == "data" else f"{FETCH_COMMAND} --data-dir {data_dir}"


def find_file(data_dir: str | Path, name: str) -> Path | None:
    for candidate in (raw_dir(data_dir) / name, raw_dir(data_dir) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def missing_files(data_dir: str | Path) -> list[str]:
    return [name for name in FILES if find_file(data_dir, name) is None]


def content_md5(path: Path) -> str:
    """MD5 of the IDX bytes (decompressed first for ``.gz``)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataFileError(f"{path}: cannot be read ({e})") from e
    return hashlib.md5(raw).hexdigest()


def verify_file(path: Path, name: str) -> None:
    _, content, zalando_gz = FILES[name]
    if path.suffix == ".gz" and md5(path) == zalando_gz:
        return
    actual = content_md5(path)
    if actual != content:
        raise DataFileError(
            f"{path}: checksum mismatch (md5 of the IDX content {actual}, Fashion-MNIST's is {content}); the file "
            f"is corrupt or not Fashion-MNIST. Delete it and run `{FETCH_COMMAND}`."
        )


def load_fashion_mnist(data_dir: str | Path, verify: bool = True) -> dict[str, np.ndarray]:
    """Full Fashion-MNIST as uint8 arrays: train_x (60000, 28, 28), train_y, test_x (10000, 28, 28), test_y."""
    missing = missing_files(data_dir)
    if missing:
        raise DataFileError(
            f"Fashion-MNIST file(s) missing in {raw_dir(data_dir).resolve()}: {', '.join(missing)} (plain or .gz). "
            f"Run `{fetch_command(data_dir)}`."
        )
    return read_idx_set(
        "Fashion-MNIST", FILES, lambda name: find_file(data_dir, name), verify_file if verify else None, FETCH_COMMAND
    )


def fetch_fashion_mnist(data_dir: str | Path, use_torchvision: bool = True) -> Path:
    """Put the four verified files into <data_dir>/FashionMNIST/raw; a no-op if they are already there."""
    target = raw_dir(data_dir)
    target.mkdir(parents=True, exist_ok=True)
    if missing_files(data_dir):
        if not (use_torchvision and _fetch_with_torchvision(data_dir)):
            _fetch_from_debian(target)
    for name in FILES:
        path = find_file(data_dir, name)
        if path is None:
            raise DataFileError(f"fetch finished but {target / name} is missing")
        verify_file(path, name)
    log.info("Fashion-MNIST ready and verified in %s", target)
    return target


def _fetch_with_torchvision(data_dir: str | Path) -> bool:
    from torchvision.datasets import FashionMNIST

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        FashionMNIST(root=str(data_dir), download=True)
        return True
    except Exception as e:  # offline
        log.info("torchvision download unavailable (%s); using Debian's %s", e.__class__.__name__, DEBIAN_PACKAGE)
        return False
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_from_debian(target: Path) -> None:
    """`apt-get download dataset-fashion-mnist`, unpack with `dpkg-deb -x`, copy the four .gz files."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DataFileError(
                f"cannot fetch Fashion-MNIST: torchvision's download failed and {tool} is not available. Copy the "
                f"four Fashion-MNIST IDX files into {target}."
            )
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if done.returncode != 0 or not debs:
            raise DataFileError(f"`apt-get download {DEBIAN_PACKAGE}` failed: {done.stderr.strip()[-500:]}")
        unpacked = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True)
        for name in FILES:
            source = unpacked / DEBIAN_DIR / f"{name}.gz"
            if not source.is_file():
                raise DataFileError(f"{debs[0].name} has no {DEBIAN_DIR}/{name}.gz")
            shutil.copyfile(source, target / f"{name}.gz")
