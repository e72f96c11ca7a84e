"""Every config option composes and validates; impossible values fail before training with a clear message."""

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ValidationError

from lepton_research.config import ConfigError, validate
from tests.conftest import CONF, compose_cfg, run_py

GROUPS = ["benchmark", "scenario", "strategy", "model", "optimizer", "compute", "tracking"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group, option):
    cfg = compose_cfg([f"{group}={option}"])
    if group == "compute" and option in ("gpu", "ddp"):
        import torch

        if not torch.cuda.is_available():
            with pytest.raises(ConfigError, match="no CUDA device"):
                validate(cfg)
            return
    validate(cfg)


def test_defaults_are_the_van_de_ven_protocol():
    cfg = compose_cfg()
    assert cfg.train.iterations == 2000 and cfg.train.batch_size == 128
    assert cfg.optimizer.lr == 0.001 and list(cfg.optimizer.betas) == [0.9, 0.999]
    assert list(cfg.model.hidden) == [400, 400]
    assert cfg.benchmark.n_tasks == 5 and cfg.scenario.name == "class_il"


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.lr=-0.1", r"optimizer.lr = -0.1 is not allowed: the learning rate must be > 0"),
        ("train.batch_size=0", r"train.batch_size = 0 is not allowed: use an integer >= 1"),
        ("train.iterations=0", r"train.iterations = 0 is not allowed"),
        ("seed=-1", r"seed = -1 is not allowed"),
        ("optimizer=sgd optimizer.momentum=1.5", r"optimizer.momentum = 1.5"),
    ],
)
def test_impossible_values(override, message):
    cfg = compose_cfg(override.split())
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_wrong_type_is_hydras_error():
    with pytest.raises((ValidationError, ConfigCompositionException), match="train.batch_size"):
        compose_cfg(["train.batch_size=lots"])


def test_unknown_group_option_lists_choices():
    with pytest.raises(MissingConfigException) as e:
        compose_cfg(["strategy=nonsense"])
    assert "naive" in str(e.value) and "joint" in str(e.value)


@pytest.mark.parametrize(
    "override,message",
    [
        ("benchmark.n_tasks=3", "benchmark.n_tasks = 3 does not divide the 10 classes; allowed: 1, 2, 5, 10"),
        ("benchmark.tasks=[[0,1],[1,2],[4,5],[6,7],[8,9]]", "does not partition the classes 0..9"),
        ("train.batch_size=0", "train.batch_size = 0 is not allowed"),
        ("scenario=online", "Could not find 'scenario/online'"),
    ],
)
def test_run_py_reports_bad_input_before_training(tmp_path, override, message):
    done = run_py("benchmark=split_mnist_5k", "tracking=none", override, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr + done.stdout
    assert "task 1/5" not in done.stdout + done.stderr
    assert not (tmp_path / "mlflow.db").exists()
