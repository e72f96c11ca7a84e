"""The config schema (structured configs) and value checks that run before any data is read or trained.

Hydra checks types and unknown group options; ``validate`` checks values and names the key, the value and
what is allowed, so an impossible experiment fails in a second instead of after an hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")


class ConfigError(ValueError):
    """An impossible config value, reported before any training."""


@dataclass
class TrainConfig:
    iterations: int | None = 2000  # optimizer steps per task; null: use epochs
    epochs: int = 1  # passes over each task's data when iterations is null
    batch_size: int = 128
    log_every_n_steps: int = 50  # train/loss is recorded every N steps
    reset_optimizer: bool = True  # a fresh optimizer per task; false: its state carries over (van de Ven's default)


@dataclass
class EvalConfig:
    adaptation_steps: list[int] = field(default_factory=list)  # e.g. [1, 5, 20]: SGD steps on each new task; []: off
    adaptation_lr: float = 0.1  # SGD learning rate of those steps
    adaptation_batch_size: int = 10  # examples per adaptation step
    adaptation_holdout: int = 1000  # examples of the new task's training set held out to score the adapted copy


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None  # null: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    experiment: str = "lepton"
    run_name: str | None = None
    skip_finished: bool = False  # true: a FINISHED run with the same config hash in the experiment is not rerun
    log_model: bool = True  # log the final model (MLflow PyTorch flavour + TorchScript) into the run
    register_as: str | None = None  # also register it in the MLflow model registry under this name


@dataclass
class ComputeConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1


@dataclass
class CompressConfig:
    method: str = "none"  # none | kd (distil into compress.student)
    student: Any = None  # a model config (_target_ + kwargs), like conf/model/*.yaml
    data: str = "all"  # all | buffer | last_task
    temperature: float = 2.0
    alpha: float = 0.9  # weight of the distillation term; 1 - alpha weighs the cross-entropy on the labels
    iterations: int = 2000
    batch_size: int = 128
    optimizer: Any = None  # a _partial_ optimizer config; null: Adam lr 1e-3
    quantize: str = "none"  # none | dynamic_int8
    latency_batch: int = 256
    latency_repeats: int = 30


@dataclass
class ScenarioConfig:
    name: str = MISSING


@dataclass
class LeptonConfig:
    seed: int = 0
    resume: bool = False
    data_dir: str = "data"
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    hparams: Any = field(default_factory=dict)  # per-strategy values set by experiment presets (see conf/strategy)
    benchmark: Any = MISSING
    model: Any = MISSING
    augment: Any = field(default_factory=lambda: {"_target_": "lepton_research.data.augment.Identity"})
    strategy: Any = MISSING
    optimizer: Any = MISSING


def register() -> None:
    """Make the schema available to config.yaml's defaults list as ``lepton_schema``."""
    ConfigStore.instance().store(name="lepton_schema", node=LeptonConfig)


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first impossible value."""
    from lepton_research.scenarios import SCENARIOS

    _require(cfg.seed >= 0, "seed", cfg.seed, "use an integer >= 0")
    t = cfg.train
    _require(t.batch_size >= 1, "train.batch_size", t.batch_size, "use an integer >= 1")
    _require(
        t.iterations is None or t.iterations >= 1,
        "train.iterations",
        t.iterations,
        "use an integer >= 1, or null to train train.epochs epochs per task",
    )
    _require(t.epochs >= 1, "train.epochs", t.epochs, "use an integer >= 1")
    _require(t.log_every_n_steps >= 1, "train.log_every_n_steps", t.log_every_n_steps, "use an integer >= 1")
    e = cfg.eval
    _require(
        all(int(n) >= 1 for n in e.adaptation_steps),
        "eval.adaptation_steps",
        list(e.adaptation_steps),
        "a list of step counts >= 1, e.g. [1,5,20]; [] turns the measure off",
    )
    _require(e.adaptation_lr > 0, "eval.adaptation_lr", e.adaptation_lr, "the learning rate must be > 0")
    _require(e.adaptation_batch_size >= 1, "eval.adaptation_batch_size", e.adaptation_batch_size, "an integer >= 1")
    _require(e.adaptation_holdout >= 1, "eval.adaptation_holdout", e.adaptation_holdout, "an integer >= 1")
    _require(cfg.scenario.name in SCENARIOS, "scenario.name", cfg.scenario.name, f"one of {', '.join(SCENARIOS)}")
    opt = cfg.optimizer
    if "lr" in opt:
        _require(opt.lr > 0, "optimizer.lr", opt.lr, "the learning rate must be > 0")
    if "momentum" in opt:
        _require(0 <= opt.momentum < 1, "optimizer.momentum", opt.momentum, "use a value in [0, 1)")
    if "betas" in opt:
        _require(
            len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas),
            "optimizer.betas",
            list(opt.betas),
            "two values in [0, 1)",
        )
    if "weight_decay" in opt:
        _require(opt.weight_decay >= 0, "optimizer.weight_decay", opt.weight_decay, "use a value >= 0")
    b = cfg.benchmark
    if "n_tasks" in b:
        _require(b.n_tasks >= 1, "benchmark.n_tasks", b.n_tasks, "use an integer >= 1")
    c = cfg.compute
    _require(
        c.accelerator in ACCELERATORS,
        "compute.accelerator",
        c.accelerator,
        f"one of {', '.join(ACCELERATORS)}",
    )
    _require(c.num_nodes >= 1, "compute.num_nodes", c.num_nodes, "use an integer >= 1")
    if c.accelerator in ("gpu", "cuda"):
        import torch

        _require(
            torch.cuda.is_available(),
            "compute.accelerator",
            c.accelerator,
            "no CUDA device is visible (torch.cuda.is_available() is False); use compute=cpu",
        )
    _require(bool(cfg.tracking.experiment), "tracking.experiment", cfg.tracking.experiment, "a non-empty name")
    validate_compress(cfg.compress)


def validate_compress(z: DictConfig) -> None:
    from lepton_research.compress import DATA_SOURCES, METHODS, QUANTIZE

    _require(z.method in METHODS, "compress.method", z.method, f"one of {', '.join(METHODS)}")
    _require(z.quantize in QUANTIZE, "compress.quantize", z.quantize, f"one of {', '.join(QUANTIZE)}")
    if z.method == "kd":
        _require(z.student is not None, "compress.student", z.student, "a model config, e.g. compress=kd's MLP")
        _require(z.data in DATA_SOURCES, "compress.data", z.data, f"one of {', '.join(DATA_SOURCES)}")
        _require(z.temperature > 0, "compress.temperature", z.temperature, "use a value > 0")
        _require(0 <= z.alpha <= 1, "compress.alpha", z.alpha, "use a weight in [0, 1]")
        _require(z.iterations >= 1, "compress.iterations", z.iterations, "use an integer >= 1")
        _require(z.batch_size >= 1, "compress.batch_size", z.batch_size, "use an integer >= 1")
    _require(z.latency_batch >= 1, "compress.latency_batch", z.latency_batch, "use an integer >= 1")
    _require(z.latency_repeats >= 1, "compress.latency_repeats", z.latency_repeats, "use an integer >= 1")
