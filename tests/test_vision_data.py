"""Vision benchmarks: the CIFAR-10 batch format and its failures, Fashion-MNIST checks, permuted / rotated MNIST,
cats vs dogs slices and shifts, on-device augmentation."""

import pickle

import numpy as np
import pytest
import torch

from lepton_research.data import fashion_mnist
from lepton_research.data.augment import RandomAffine, RandomCropFlip
from lepton_research.data.cats_dogs import SHIFTS, check_shifts, colour, grayscale, load_photo_folder, sliced_shifted
from lepton_research.data.cifar import FOLDER, load_cifar10, read_batch
from lepton_research.data.domains import domain_stream, permutations, permute, rotate, transformed_copies
from lepton_research.data.idx import DataFileError, write_idx
from tests.cifar_format import write_cifar_files

# ---- CIFAR-10 batches ---------------------------------------------------------------------------------------


def test_cifar_files_round_trip_in_the_real_layout(tmp_path):
    write_cifar_files(tmp_path)
    with open(tmp_path / FOLDER / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert set(raw) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert raw[b"data"].dtype == np.uint8 and raw[b"data"].shape == (30, 3072) and isinstance(raw[b"labels"], list)
    arrays = load_cifar10(tmp_path, verify=False, download=False)
    assert arrays["train_x"].shape == (150, 3, 32, 32) and arrays["test_x"].shape == (60, 3, 32, 32)
    assert np.bincount(arrays["train_y"]).tolist() == [15] * 10
    # row-major 1024 R, 1024 G, 1024 B: pixel (0, 0, 1) of image 0 is byte 1 of its row, (1, 0, 0) byte 1024
    x0 = raw[b"data"][0]
    np.testing.assert_array_equal(arrays["train_x"][0, :, 0, 1], x0[[1, 1025, 2049]])


def test_cifar_checksums_are_checked_unless_verify_false(tmp_path):
    write_cifar_files(tmp_path)
    with pytest.raises(DataFileError, match="data_batch_1: checksum mismatch.*benchmark.verify=false"):
        load_cifar10(tmp_path, download=False)


def test_cifar_missing_says_data_or_internet(tmp_path):
    with pytest.raises(DataFileError, match="missing.*data_batch_1.*test_batch.*internet"):
        load_cifar10(tmp_path, download=False)


def test_cifar_truncated_pickle_names_the_file(tmp_path):
    folder = write_cifar_files(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataFileError, match="data_batch_3: not a readable CIFAR-10 batch"):
        load_cifar10(tmp_path, verify=False, download=False)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({b"data": np.zeros((4, 1024), np.uint8), b"labels": [0] * 4}, r"shape \(4, 1024\)"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, "dtype float32"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, "labels for 4 images"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside 0..9"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, "b'data' and b'labels'"),
    ],
)
def test_cifar_wrong_content_names_the_file(tmp_path, entry, message):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DataFileError, match=f"test_batch: .*{message}"):
        read_batch(path)


# ---- Fashion-MNIST -----------------------------------------------------------------------------------------


def test_fashion_mnist_missing_and_corrupt(tmp_path):
    with pytest.raises(DataFileError, match="FashionMNIST.*train-images-idx3-ubyte.*fetch fashion_mnist"):
        fashion_mnist.load_fashion_mnist(tmp_path)
    raw = fashion_mnist.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name, (shape, _, _) in fashion_mnist.FILES.items():
        write_idx(raw / f"{name}.gz", np.zeros((2, *shape[1:]), np.uint8))
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte.gz: checksum mismatch"):
        fashion_mnist.load_fashion_mnist(tmp_path)
    with pytest.raises(DataFileError, match=r"shape \(2, 28, 28\)"):
        fashion_mnist.load_fashion_mnist(tmp_path, verify=False)


@pytest.mark.skipif(bool(fashion_mnist.missing_files("data")), reason="Fashion-MNIST not fetched")
def test_full_fashion_mnist_verifies():
    arrays = fashion_mnist.load_fashion_mnist("data")
    assert arrays["train_x"].shape == (60000, 28, 28) and np.bincount(arrays["test_y"]).tolist() == [1000] * 10


# ---- permuted / rotated: one data set, a transformation per task ---------------------------------------------


def _tiny_arrays(n=12):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = np.arange(n) % 10
    return {"train_x": x, "train_y": y, "test_x": x[:6], "test_y": y[:6]}


def test_permutations_first_task_identity_then_fixed_permutations():
    a, b = permutations(3, 784, seed=1), permutations(3, 784, seed=1)
    assert a[0] is None and sorted(a[1].tolist()) == list(range(784))
    np.testing.assert_array_equal(a[2], b[2])
    assert not np.array_equal(a[1], permutations(3, 784, seed=2)[1])
    x = torch.arange(784.0).view(1, 1, 28, 28)
    assert permute(x, a[1]).flatten().tolist() == a[1].astype(float).tolist()  # pixel i of the output = input a[i]


def test_domain_stream_scenarios():
    parts = transformed_copies(_tiny_arrays(), [lambda x: x, lambda x: 1 - x])
    for name, out in (("domain_il", 10), ("task_il", 20), ("class_il", 20)):
        s = domain_stream("p", parts, 10, name)
        assert s.scenario.out_features == out and s[1].classes == list(range(10, 20))
        assert s.input_shape == (1, 28, 28)
    d, c = domain_stream("p", parts, 10, "domain_il"), domain_stream("p", parts, 10, "class_il")
    assert d[1].train.y.tolist() == (np.arange(12) % 10).tolist()  # domain-IL: the digit
    assert c[1].train.y.tolist() == (np.arange(12) % 10 + 10).tolist()  # class-IL: (task, digit) pairs
    torch.testing.assert_close(d[1].train.x, 1 - d[0].train.x)


def test_rotate_90_moves_the_top_row_to_the_left_column():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 0, :] = 1.0
    r = rotate(x, 90.0)  # counter-clockwise: the top row becomes the left column
    assert r[0, 0, :, 0].sum() > 20 and r[0, 0, 0, 1:].sum() < 2


# ---- cats vs dogs ---------------------------------------------------------------------------------------------


def test_cats_dogs_slices_are_disjoint_and_shifted():
    rng = np.random.default_rng(0)
    n = 40
    x = rng.integers(0, 256, size=(n, 3, 8, 8), dtype=np.uint8)
    x[:, :, 0, 0] = np.arange(n)[:, None]  # a tag pixel that identifies each image
    arrays = {"train_x": x, "train_y": np.arange(n) % 2, "test_x": x[:10], "test_y": np.arange(10) % 2}
    parts = sliced_shifted(arrays, ["original", "colour"], seed=0)
    tags = [set((p["train_x"][:, 1, 0, 0] * 255).round().long().tolist()) for p in parts]  # colour keeps R at G
    assert not tags[0] & tags[1] and len(tags[0]) == len(tags[1]) == 20
    assert [p["train_y"].sum().item() for p in parts] == [10, 10]  # class-balanced
    with pytest.raises(ValueError, match="unknown shift.*sepia.*allowed: original, grayscale"):
        check_shifts(["original", "sepia"])
    g = grayscale(torch.rand(2, 3, 4, 4))
    assert torch.equal(g[:, 0], g[:, 2]) and set(SHIFTS) >= {"original", "grayscale", "rotation", "blur", "colour"}
    assert torch.equal(colour(torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)).flatten(), torch.tensor([3.0, 1.0, 2.0]))


def test_photo_folder_in_kaggle_layout(tmp_path):
    from PIL import Image

    for i in range(5):
        Image.new("RGB", (60, 40), (200, 10, 10)).save(tmp_path / f"cat.{i}.jpg")
        Image.new("RGB", (50, 70), (10, 10, 200)).save(tmp_path / f"dog.{i}.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    arrays = load_photo_folder(tmp_path, image_size=16, test_fraction=0.2)
    assert arrays["train_x"].shape == (8, 3, 16, 16) and arrays["test_x"].shape == (2, 3, 16, 16)
    assert arrays["train_y"].tolist() == [0] * 4 + [1] * 4
    assert arrays["train_x"][0, 0].mean() > 150 and arrays["train_x"][-1, 2].mean() > 150  # cats red, dogs blue
    (tmp_path / "dog.9.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataFileError, match=r"dog.9.jpg: not a readable image"):
        load_photo_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="cat.<n>.jpg and dog.<n>.jpg.*found 0 cats and 0 dogs"):
        load_photo_folder(tmp_path / "empty")


# ---- on-device augmentation -----------------------------------------------------------------------------------


def test_crop_flip_shifts_and_mirrors_and_is_seeded():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    torch.manual_seed(0)
    a = RandomCropFlip(padding=2, flip_p=0.5)(x)
    torch.manual_seed(0)
    b = RandomCropFlip(padding=2, flip_p=0.5)(x)
    assert torch.equal(a, b) and a.shape == x.shape
    assert torch.equal(RandomCropFlip(padding=0, flip_p=0.0)(x), x)
    assert torch.equal(RandomCropFlip(padding=0, flip_p=1.0)(x), x.flip(3))
    # every crop is a shifted window of the zero-padded image: each output row is a slice of an input row or zeros
    torch.manual_seed(3)
    out = RandomCropFlip(padding=2, flip_p=0.0)(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    windows = padded.unfold(2, 6, 1).unfold(3, 6, 1)  # (n, c, 5, 5, 6, 6)
    for i in range(2):
        assert any(torch.equal(out[i], windows[i, :, r, c]) for r in range(5) for c in range(5))
    with pytest.raises(ValueError, match="augment.padding = -1"):
        RandomCropFlip(padding=-1)


def test_affine_identity_at_zero_and_bounded_otherwise():
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(RandomAffine(degrees=0, scale=(1, 1), translate=0)(x), x, atol=1e-5, rtol=0)
    torch.manual_seed(0)
    y = RandomAffine()(x)
    assert y.shape == x.shape and not torch.allclose(y, x) and y.min() >= 0 and y.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="augment: degrees"):
        RandomAffine(scale=(1.2, 1.1))


@pytest.mark.slow
def test_fetch_fashion_mnist_from_debian_verifies_checksums(tmp_path):
    """The offline fetch path: Debian's dataset-fashion-mnist (recompressed .gz), checked by content MD5."""
    import shutil

    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("no apt-get / dpkg-deb")
    try:
        target = fashion_mnist.fetch_fashion_mnist(tmp_path, use_torchvision=False)
    except DataFileError as e:
        if "apt-get download" in str(e):
            pytest.skip(f"Debian's package is unreachable: {e}")
        raise
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in fashion_mnist.FILES)
    assert fashion_mnist.load_fashion_mnist(tmp_path)["test_x"].shape == (10000, 28, 28)
