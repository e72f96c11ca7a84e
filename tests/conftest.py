"""Shared fixtures: the real config composed once per test, shrunk to tiny budgets, with its own store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from lepton_research.config import register

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

register()


def compose_cfg(overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides or [])


@pytest.fixture
def tiny_cfg(tmp_path):
    """split_mnist_5k, 30 steps per task, MLflow in a temporary sqlite store, no model logging."""

    def make(*overrides: str) -> DictConfig:
        cfg = compose_cfg(
            [
                "benchmark=split_mnist_5k",
                "train.iterations=30",
                "train.log_every_n_steps=10",
                f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                "tracking.log_model=false",  # the deploy tests turn it on
                *overrides,
            ]
        )
        with open_dict(cfg):
            cfg.tracking.experiment = cfg.tracking.experiment or "test"
        return cfg

    return make


def run_py(*args: str, cwd: Path = ROOT, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run `python run.py ARGS` as a user would."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )
