"""Vision streams end to end: CIFAR-format files written by the test (not CIFAR images) through run.py with the CNN,
EWC on the CNN, and Avalanche's SplitMNIST on our MNIST files against our split_mnist."""

import json

import numpy as np
import pytest
import torch

from lepton_research import cli
from lepton_research.data import mnist
from lepton_research.data.idx import DataFileError
from lepton_research.data.stream import TaskStream, TensorData
from lepton_research.tracking import read_matrix_csv
from tests.cifar_format import write_cifar_files
from tests.conftest import run_py

pytestmark = pytest.mark.slow


def test_split_cifar10_run_py_with_cnn(tmp_path):
    write_cifar_files(tmp_path / "data")
    done = run_py(
        "benchmark=split_cifar10",
        "scenario=task_il",
        "model=cnn",
        "augment=standard",
        "benchmark.verify=false",  # the test's files are not the canonical release
        f"data_dir={tmp_path / 'data'}",
        "train.iterations=25",
        "train.batch_size=32",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    R = read_matrix_csv(tmp_path / "run" / "accuracy_matrix.csv")
    assert R.shape == (6, 5)
    # each task is learnt: the class colours of the test files are separable (chance is 0.5)
    assert np.diag(R[1:]).min() > 0.8, R
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0.5 < summary["final/avg_acc"] <= 1.0


def test_cifar_cats_dogs_domain_il_with_cnn(tiny_cfg, tmp_path):
    write_cifar_files(tmp_path / "data")
    cfg = tiny_cfg(
        "benchmark=cifar_cats_dogs",
        "scenario=domain_il",
        "model=cnn",
        "augment=standard",
        "benchmark.verify=false",
        f"data_dir={tmp_path / 'data'}",
        "train.iterations=25",
        "train.batch_size=16",
        "tracking=none",
    )
    out = cli.run(cfg, output_dir=tmp_path / "run")
    R = np.array(out["R"])
    assert R.shape == (6, 5)
    assert R[1, 0] > 0.8, R  # the original pictures are learnt (chance is 0.5)


def test_cifar_stream_without_files_says_so(tiny_cfg, tmp_path):
    cfg = tiny_cfg("benchmark=split_cifar10", "benchmark.download=false", f"data_dir={tmp_path}", "tracking=none")
    with pytest.raises(DataFileError, match="CIFAR-10 file.*missing.*internet"):
        cli.run(cfg, output_dir=tmp_path / "run")


def test_ewc_on_the_cnn(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "model=cnn",
        "strategy=ewc",
        "++hparams.ewc.fisher_samples=16",
        "benchmark.n_tasks=2",
        "train.iterations=10",
        "train.batch_size=16",
        "train.log_every_n_steps=3",
    )
    out = cli.run(cfg, output_dir=tmp_path / "run")
    assert np.isfinite(np.array(out["R"])).all()
    from mlflow.tracking import MlflowClient

    history = MlflowClient(cfg.tracking.uri).get_metric_history(out["run_id"], "train/penalty")
    assert history and history[-1].value > 0  # the Fisher of task 0 penalises task 1's steps


def grouped_by_class(stream: TaskStream) -> TaskStream:
    """The same stream with each task's samples stably sorted by label: the order in which Avalanche's
    experiences hold them (class by class, each class in file order)."""
    for task in stream:
        for split in ("train", "test"):
            data = getattr(task, split)
            order = torch.sort(data.y, stable=True).indices
            setattr(task, split, TensorData(data.x[order], data.y[order], data.task[order]))
    return stream


@pytest.mark.skipif(bool(mnist.missing_files("data")), reason="full MNIST not fetched (make data)")
def test_avalanche_split_mnist_equals_ours(tiny_cfg, tmp_path, monkeypatch):
    """Same images, labels and tasks; only the order within a task differs. Given the same order, same matrix."""
    common = ("scenario=class_il", "train.iterations=20", "tracking=none", "seed=2")
    ours_cfg = tiny_cfg("benchmark=split_mnist", *common)
    theirs_cfg = tiny_cfg("benchmark=avalanche", *common)
    ours = cli.build(ours_cfg.benchmark, scenario="class_il")
    theirs = cli.build(theirs_cfg.benchmark, scenario="class_il")
    assert [t.classes for t in ours] == [t.classes for t in theirs]
    grouped_by_class(ours)
    for a, b in zip(ours, theirs, strict=True):
        for split in ("train", "test"):
            da, db = getattr(a, split), getattr(b, split)
            assert torch.equal(da.x, db.x) and torch.equal(da.y, db.y) and torch.equal(da.task, db.task)

    build = cli.build
    streams = {"split_mnist": ours, "avalanche": theirs}

    def cached(node, **kwargs):  # hand run() the streams built above (loading them again costs ~20 s)
        target = str(node.get("_target_", ""))
        if target.endswith("split_mnist"):
            return streams["split_mnist"]
        if target.endswith("from_avalanche"):
            torch.rand(10), np.random.rand(10)  # as building Avalanche's benchmark does: init must not depend on it
            return streams["avalanche"]
        return build(node, **kwargs)

    monkeypatch.setattr(cli, "build", cached)
    r_ours = cli.run(ours_cfg, output_dir=tmp_path / "ours")["R"]
    r_theirs = cli.run(theirs_cfg, output_dir=tmp_path / "theirs")["R"]
    np.testing.assert_array_equal(np.array(r_ours), np.array(r_theirs))


def test_buzzega_preset_runs_on_cifar_format_files(tiny_cfg, tmp_path):
    """The Split-CIFAR-10 preset (reduced ResNet-18, SGD, crop + flip, epochs) on the test's files, one epoch."""
    write_cifar_files(tmp_path / "data")
    cfg = tiny_cfg(
        "experiment=buzzega2020/split_cifar10_class_il",
        "benchmark=split_cifar10",  # tiny_cfg's command-line benchmark=split_mnist_5k would beat the preset's
        "strategy=replay",
        "train.iterations=null",  # tiny_cfg sets 30; the preset trains by epochs
        "train.epochs=1",
        "benchmark.verify=false",
        f"data_dir={tmp_path / 'data'}",
        "tracking=none",
    )
    assert cfg.train.iterations is None and cfg.model._target_.endswith("ReducedResNet18")
    out = cli.run(cfg, output_dir=tmp_path / "run")
    assert np.array(out["R"]).shape == (6, 5) and np.isfinite(np.array(out["R"])).all()
