"""Reader for the IDX format of LeCun's MNIST files (and Fashion-MNIST), plain or gzipped."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataFileError(RuntimeError):
    """A data file is missing, truncated or not in the expected format."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not) into an array; a malformed file raises DataFileError naming it."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataFileError(f"{path}: cannot be read ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataFileError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFileError(
            f"{path}: truncated or padded: header says shape {shape} ({expected} bytes of data), "
            f"file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).copy()  # writable, native


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an uint8 array as an IDX file (used by tests and tools that make small files in the real format)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def read_idx_set(
    dataset: str,
    files: dict[str, tuple],
    locate: Callable[[str], Path],
    verify: Callable[[Path, str], None] | None,
    fetch_command: str,
) -> dict[str, np.ndarray]:
    """The four files of an MNIST-format set (``files``: name -> (shape, ...)) as uint8 arrays train_x, train_y,
    test_x, test_y; each file is verified (if ``verify``) and checked for its shape, an error names the file."""
    arrays = {}
    for name, (shape, *_) in files.items():
        path = locate(name)
        if verify is not None:
            verify(path, name)
        array = read_idx(path)
        if array.shape != shape:
            raise DataFileError(f"{path}: shape {array.shape}, {dataset}'s is {shape}. Run `{fetch_command}`.")
        arrays[name] = array
    return {
        "train_x": arrays["train-images-idx3-ubyte"],
        "train_y": arrays["train-labels-idx1-ubyte"].astype(np.int64),
        "test_x": arrays["t10k-images-idx3-ubyte"],
        "test_y": arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
    }
