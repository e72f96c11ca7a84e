"""Config of the vision streams: presets override the top-level train keys, bad values name their key."""

import pytest

from lepton_research import cli
from lepton_research.config import ConfigError
from tests.conftest import compose_cfg


def test_experiment_presets_override_config_yaml_keys():
    """config.yaml's own keys come before the preset (_self_ before experiment), so a preset's train: applies."""
    cfg = compose_cfg(["experiment=buzzega2020/split_cifar10_class_il"])
    assert (cfg.train.iterations, cfg.train.epochs, cfg.train.batch_size) == (None, 50, 32)
    assert cfg.model._target_.endswith("ReducedResNet18") and cfg.augment._target_.endswith("RandomCropFlip")
    assert compose_cfg(["experiment=vandeven2019/split_mnist_task_il"]).train.reset_optimizer is False
    assert compose_cfg(["experiment=buzzega2020/split_cifar10_class_il", "train.epochs=2"]).train.epochs == 2
    assert compose_cfg([]).train.reset_optimizer is True


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["benchmark=cifar_cats_dogs", "benchmark.shifts=[original,sepia]"], "benchmark.shifts.*sepia"),
        (["benchmark=rotated_mnist", "benchmark.n_tasks=3", "benchmark.angles=[0,90]"], "benchmark.angles has 2"),
        (["benchmark=permuted_mnist", "benchmark.n_tasks=0"], "benchmark.n_tasks = 0"),
        (["benchmark=split_fashion_mnist", "benchmark.n_tasks=3"], "benchmark.n_tasks = 3 does not divide"),
        (["augment=standard", "augment.padding=-2"], "augment.padding = -2"),
        (["model=cnn", "benchmark=split_mnist_5k", "model.channels=[8,8,8,8,8,8]"], "too many 2x poolings"),
    ],
)
def test_bad_values_name_the_key(tiny_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        cli.run(tiny_cfg(*overrides, "tracking=none"), output_dir=tmp_path / "run")
