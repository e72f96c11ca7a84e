"""run(cfg): the one place that builds the parts of an experiment, runs the stream and returns the summary."""

from __future__ import annotations

import gc
import hashlib
import logging
import subprocess
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lepton_research.adaptation import Adaptation
from lepton_research.compress import compress
from lepton_research.config import ConfigError, validate
from lepton_research.data.idx import DataFileError
from lepton_research.deploy import Deployable, torchscript
from lepton_research.learner import ContinualModule
from lepton_research.loop import CHECKPOINT, Budget, load_checkpoint, run_stream, seed_all
from lepton_research.tracking import Tracker

log = logging.getLogger(__name__)

# keys that do not change what is computed: left out of the config hash that resume and lepton.config_hash use
_UNHASHED = ("resume", "tracking", "data_dir")


def config_hash(cfg: DictConfig) -> str:
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in _UNHASHED:
        container.pop(key, None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(container)).encode()).hexdigest()[:12]


def git_sha() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flatten(v, f"{key}.") if isinstance(v, dict) else {key: str(v)})
    return out


def choice(group: str, cfg: DictConfig) -> str:
    """The chosen option of a config group (e.g. 'ewc'), from Hydra when it runs us, else from _target_."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices[group])
    except (ValueError, KeyError):
        node = cfg[group]
        return str(node.get("_target_", "?")).rsplit(".", 1)[-1].lower()


def sweep_tags() -> dict[str, str]:
    """``lepton.sweep`` (the sweep folder of the multirun this job belongs to) and, under the Optuna sweeper,
    ``lepton.study`` (the study name); empty for a single run."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except ValueError:
        return {}
    if hc.mode != RunMode.MULTIRUN:
        return {}
    tags = {"lepton.sweep": str(hc.sweep.dir)}
    if hc.sweeper.get("study_name"):
        tags["lepton.study"] = str(hc.sweeper.study_name)
    return tags


def quiet_lightning() -> None:
    """Lightning prints its device banner at every Trainer; one Trainer per task makes that noise."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # frozen columns (progressive nets) stay in eval mode on purpose
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")


def build(node: DictConfig, **kwargs):
    """hydra.utils.instantiate, with a factory's own ValueError (an impossible value) reported as a ConfigError
    and a data-file error passed through, instead of Hydra's generic wrapper."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, DataFileError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(str(cause)) from cause
        raise


def check_scenario(strategy, name: str, scenario: str) -> None:
    """A strategy that cannot run a scenario says so before any data is read."""
    if scenario not in strategy.scenarios:
        raise ConfigError(
            f"strategy={name} does not support scenario={scenario}: {strategy.scenario_reason} "
            f"Allowed: scenario={' | '.join(strategy.scenarios)}"
        )


def compute_device(cfg: DictConfig) -> torch.device:
    return torch.device("cuda" if cfg.compute.accelerator in ("gpu", "cuda") else "cpu")


def format_matrix(R: np.ndarray) -> str:
    T = R.shape[1]
    lines = ["trained\\test " + " ".join(f"{f'task {j}':>7}" for j in range(T))]
    for k, row in enumerate(R):
        label = "untrained" if k == 0 else f"after {k - 1}"
        lines.append(f"{label:>12} " + " ".join(f"{v:7.4f}" for v in row))
    return "\n".join(lines)


def after_stream(cfg, learner, student, stream, make_trainer, tracker, output_dir: Path) -> dict:
    """The tail after the last task: compress (distil and/or quantise), then log the deployable model."""
    z, final, prefix, values = cfg.compress, learner.model, "acc/", {}
    if z.method != "none" or z.quantize != "none":
        memory = learner.strategy.memory_data() if z.method == "kd" and z.data == "buffer" else None
        result = compress(
            z,
            learner.model,
            student,
            stream,
            memory,
            make_trainer,
            optimizer=instantiate(z.optimizer) if z.get("optimizer") else None,
            seed=cfg.seed,
            metrics_sink=tracker.log_train,
            step_offset=learner.step_offset,
        )
        tracker.log_results("compress", result.metrics, step=len(stream))
        final, values = result.model, result.metrics
        prefix = "quantized/acc/" if z.quantize != "none" else "student/acc/"
    if cfg.tracking.log_model and tracker.enabled:
        deployable = Deployable(final.cpu(), stream.scenario)
        example = stream[0].test.x[:2].cpu()
        path = torchscript(deployable, example, output_dir / "model_torchscript.pt")
        values["model_uri"] = tracker.log_model(
            deployable,
            example,
            task_il=deployable.task_il,
            logged_prefix=prefix,
            torchscript_path=path,
            register_as=cfg.tracking.register_as,
        )
    return values


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> dict[str, float]:
    """Run one task sequence; returns the final/* summary. ``output_dir`` defaults to Hydra's run folder."""
    started = time.time()
    validate(cfg)
    if output_dir is None:
        from hydra.core.hydra_config import HydraConfig

        output_dir = HydraConfig.get().runtime.output_dir
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    quiet_lightning()
    chash = config_hash(cfg)
    resume_state = load_checkpoint(output_dir / CHECKPOINT, chash) if cfg.resume else None

    gc.collect()  # a previous job of this process (a multirun) may leave its stream in reference cycles
    seed_all(cfg.seed)
    strategy = build(cfg.strategy)
    check_scenario(strategy, choice("strategy", cfg), cfg.scenario.name)
    stream = build(cfg.benchmark, scenario=cfg.scenario.name).to(compute_device(cfg))
    seed_all(cfg.seed)  # again: a benchmark that draws from the global generators (Avalanche's) must not shift init
    model = build(cfg.model, in_shape=stream.input_shape, out_features=stream.scenario.out_features)
    student = (
        build(cfg.compress.student, in_shape=stream.input_shape, out_features=stream.scenario.out_features)
        if cfg.compress.method == "kd"
        else None
    )
    if cfg.compress.method == "kd" and cfg.compress.data == "buffer" and not strategy.keeps_memory:
        raise ConfigError(
            f"compress.data = 'buffer' needs a strategy that keeps a memory of examples (e.g. strategy=replay), "
            f"not {choice('strategy', cfg)}; use compress.data=all or last_task"
        )
    names = {g: choice(g, cfg) for g in ("strategy", "benchmark", "model", "augment")}
    tracker = Tracker(
        output_dir,
        enabled=cfg.tracking.enabled,
        uri=cfg.tracking.uri,
        experiment=cfg.tracking.experiment,
        run_name=cfg.tracking.run_name or f"{names['strategy']}-{cfg.scenario.name}-s{cfg.seed}",
        tags={
            "lepton.strategy": names["strategy"],
            "lepton.benchmark": names["benchmark"],
            "lepton.scenario": cfg.scenario.name,
            "lepton.seed": str(cfg.seed),
            "lepton.model": names["model"],
            "lepton.augment": names["augment"],
            "lepton.config_hash": chash,
            "lepton.git_sha": git_sha(),
            # the same commit and seed can give other digits on another CPU (its kernels round differently):
            # these two tell which machines' runs are bit-comparable
            "lepton.torch": torch.__version__,
            "lepton.cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **sweep_tags(),
        },
        params=flatten(OmegaConf.to_container(cfg, resolve=True)),
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
    )
    learner = ContinualModule(
        model,
        strategy,
        stream.scenario,
        instantiate(cfg.optimizer),
        cfg.train.log_every_n_steps,
        tracker.log_train,
        reset_optimizer=cfg.train.reset_optimizer,
        augment=build(cfg.augment),
    )
    learner.job_started = started

    def make_trainer() -> L.Trainer:
        c = cfg.compute
        return L.Trainer(
            accelerator=c.accelerator,
            devices=c.devices,
            strategy=c.strategy,
            precision=c.precision,
            num_nodes=c.num_nodes,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(output_dir),
        )

    if cfg.tracking.skip_finished and not cfg.resume and (done := tracker.find_finished(chash)):
        log.info(
            "skipped: run %s in experiment '%s' already holds this config (hash %s), FINISHED",
            done["run_id"],
            cfg.tracking.experiment,
            chash,
        )
        return {**done, "skipped": True}
    log.info(
        "%s | %s | %s | seed %d | %d tasks %s | %s",
        names["benchmark"],
        cfg.scenario.name,
        names["strategy"],
        cfg.seed,
        len(stream),
        [t.classes for t in stream],
        output_dir,
    )
    tracker.start(run_id=resume_state["run_id"] if resume_state else None)
    budget = Budget(cfg.train.batch_size, cfg.train.iterations, cfg.train.epochs)
    try:
        R, fit_seconds = run_stream(
            stream,
            learner,
            make_trainer,
            tracker,
            seed=cfg.seed,
            budget=budget,
            output_dir=output_dir,
            config_hash=chash,
            resume_state=resume_state,
            adaptation=Adaptation.from_config(cfg.eval),
        )
        title = f"{names['strategy']} | {names['benchmark']} {cfg.scenario.name} | seed {cfg.seed}"
        summary = tracker.finish(R, title, terminate=False)  # the stream's results are recorded before the tail
        tail = after_stream(cfg, learner, student, stream, make_trainer, tracker, output_dir)
        tracker.terminate()
    except BaseException:
        tracker.fail()
        raise
    log.info("accuracy matrix R[k][j] (row k: after training tasks 0..k-1; row 0 untrained):\n%s", format_matrix(R))
    log.info("summary: %s", ", ".join(f"{k} {v:.4f}" for k, v in summary.items()))
    log.info(tracker.ui_hint())
    if tracker.unlogged:
        log.error(
            "this run is NOT in MLflow (%s). Its results are in %s; upload them with: "
            "python -m lepton_research.upload %s --uri %s",
            tracker.unlogged,
            output_dir,
            output_dir,
            tracker.uri,
        )
    return {
        **summary,
        **tail,
        "R": R.tolist(),
        "fit_seconds": sum(fit_seconds),
        "run_id": tracker.run_id,
        "output_dir": str(output_dir),
        "unlogged": tracker.unlogged,
    }
