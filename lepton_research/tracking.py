"""The MLflow contract (DESIGN.md): one run per task sequence, metric series with step = tasks trained.

Local files come first: ``accuracy_matrix.csv`` and ``summary.json`` are written to the run's output folder
before anything is sent to MLflow, so a tracking failure never loses a result. ``enabled=False``
(``tracking=none``) writes only those local files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from lepton_research import metrics, plots, sweep_callbacks
from lepton_research.mlflow_store import get_or_create_experiment, is_unreachable, open_client

log = logging.getLogger(__name__)

LOCAL_RECORD = "tracking.json"  # experiment, run name, tags and params: what upload needs to recreate the run
TRAIN_CSV = "train_metrics.csv"  # step,key,value of every train/* metric sent
UNLOGGED = sweep_callbacks.UNLOGGED  # present when MLflow could not record the run: why, and the upload command


def resolve_uri(uri: str | None) -> str:
    """``tracking.uri``, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db (absolute)."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def is_global_zero() -> bool:
    """True outside DDP and on the rank-0 process of a DDP job (Lightning and SLURM set these variables)."""
    return all(os.environ.get(v, "0") == "0" for v in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def write_matrix_csv(R: np.ndarray, path: Path) -> None:
    T = R.shape[1]
    lines = ["trained_tasks," + ",".join(f"task_{j}" for j in range(T))]
    lines += [f"{k}," + ",".join(f"{v:.6f}" for v in row) for k, row in enumerate(R)]
    path.write_text("\n".join(lines) + "\n")


def read_matrix_csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, 1:]


class Tracker:
    def __init__(
        self,
        output_dir: Path,
        *,
        enabled: bool,
        uri: str | None,
        experiment: str,
        run_name: str | None,
        tags: dict[str, str],
        params: dict[str, str],
        config_yaml: str,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.enabled = enabled and is_global_zero()  # under DDP only rank 0 talks to MLflow
        self.uri = resolve_uri(uri) if enabled else None
        self.experiment, self.run_name = experiment, run_name
        self.tags, self.params, self.config_yaml = tags, params, config_yaml
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._train: list[tuple[int, dict[str, torch.Tensor]]] = []
        self._client = None
        self.unlogged: str | None = None  # why MLflow stopped recording this run (the store went away), if it did

    def find_finished(self, config_hash: str) -> dict | None:
        """The summary of a FINISHED run in the experiment with this config hash, if there is one."""
        if not self.enabled:
            return None
        client = open_client(self.uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            return None
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`lepton.config_hash` = '{config_hash}' and attributes.status = 'FINISHED'",
            max_results=1,
        )
        if not runs:
            return None
        return {
            **{k: v for k, v in runs[0].data.metrics.items() if k.startswith("final/")},
            "run_id": runs[0].info.run_id,
        }

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, run_id: str | None = None) -> str | None:
        """Create the run, or reopen ``run_id`` (resume). What the run is (config, tags, params) is written to
        the output folder first, so ``python -m lepton_research.upload`` can record it later if MLflow is away."""
        if not self.enabled:
            return None
        from mlflow.entities import Param, RunTag

        (self.output_dir / "config.yaml").write_text(self.config_yaml)
        record = {"experiment": self.experiment, "run_name": self.run_name, "tags": self.tags, "params": self.params}
        (self.output_dir / LOCAL_RECORD).write_text(json.dumps(record, indent=1) + "\n")
        try:
            self._client = open_client(self.uri)
            if run_id is not None:
                run = self._client.get_run(run_id)
                self.run_id, self.experiment_id = run_id, run.info.experiment_id
                self._client.update_run(run_id, status="RUNNING")
                return run_id
            self.experiment_id = get_or_create_experiment(self._client, self.experiment)
            run = self._client.create_run(self.experiment_id, run_name=self.run_name, tags=self.tags)
        except Exception as e:
            self._lost(e)
            return None
        self.run_id = run.info.run_id
        items = [Param(k, v[:6000]) for k, v in self.params.items()]
        for i in range(0, len(items), 100):
            self._send("log_batch", self.run_id, params=items[i : i + 100])
        self._send("log_batch", self.run_id, tags=[RunTag("lepton.output_dir", str(self.output_dir))])
        self._send("log_artifact", self.run_id, str(self.output_dir / "config.yaml"))
        return self.run_id

    def _send(self, method: str, *args, **kwargs):
        """One MLflow client call; once the store is unreachable, nothing more is sent (results stay local)."""
        if self.unlogged is not None or self._client is None:
            return None
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except Exception as e:
            self._lost(e)
            return None

    def _lost(self, error: Exception) -> None:
        if not is_unreachable(error):
            raise error
        self.unlogged = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        (self.output_dir / UNLOGGED).write_text(
            f"MLflow ({self.uri}) could not record this run: {self.unlogged}\n"
            f"run id: {self.run_id}\n"
            f"upload it when the store is back: python -m lepton_research.upload {self.output_dir} --uri {self.uri}\n"
        )
        log.error(
            "MLflow store %s is unreachable (%s): training goes on, results stay in %s; upload them later with "
            "`python -m lepton_research.upload %s --uri %s`",
            self.uri,
            self.unlogged,
            self.output_dir,
            self.output_dir,
            self.uri,
        )

    def finish(self, R: np.ndarray, title: str, terminate: bool = True) -> dict[str, float]:
        """Write and log the summary and artifacts, mark the run FINISHED (``terminate=False``: the caller does,
        after the compression tail); returns the summary."""
        self.flush()
        summary = metrics.summary(R)
        if not is_global_zero():  # under DDP rank 0 writes the local files
            return summary
        write_matrix_csv(R, self.output_dir / "accuracy_matrix.csv")
        (self.output_dir / "summary.json").write_text(json.dumps({**summary, "run_id": self.run_id}, indent=2) + "\n")
        if not self.enabled:
            return summary
        plots.accuracy_matrix_png(R, self.output_dir / "accuracy_matrix.png", title)
        plots.forgetting_curves_png(R, self.output_dir / "forgetting_curves.png", title)
        self.log_metrics(summary, step=R.shape[1])
        for name in ("accuracy_matrix.csv", "accuracy_matrix.png", "forgetting_curves.png", "summary.json"):
            self._send("log_artifact", self.run_id, str(self.output_dir / name))
        if terminate:
            self.terminate()
        return summary

    def log_results(self, name: str, values: dict[str, float], step: int) -> None:
        """Write ``values`` to ``<name>.json`` in the output folder first, then log them as metrics at ``step``."""
        if not is_global_zero():
            return
        (self.output_dir / f"{name}.json").write_text(json.dumps(values, indent=2) + "\n")
        self.flush()
        self.log_metrics(values, step=step)
        if self.enabled:
            self._send("log_artifact", self.run_id, str(self.output_dir / f"{name}.json"))

    def terminate(self) -> None:
        if self.enabled:
            self.flush()
            self._send("set_terminated", self.run_id, "FINISHED")

    def fail(self) -> None:
        """End the run FAILED (never leave it RUNNING after an error)."""
        if self.enabled and self.run_id is not None:
            try:
                self.flush()
            finally:
                self._send("set_terminated", self.run_id, "FAILED")

    # ---- metrics ---------------------------------------------------------------------------------
    def log_train(self, step: int, values: dict[str, torch.Tensor]) -> None:
        """Buffer training scalars (device tensors); sent in one batch by ``flush``."""
        self._train.append((step, values))

    def flush(self) -> None:
        if not self._train:
            return
        buffered, self._train = self._train, []
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        keys = [(step, k) for step, values in buffered for k in values]
        numbers = torch.stack([v.float() for _, values in buffered for v in values.values()]).tolist()
        batch = [Metric(k, float(v), now, step) for (step, k), v in zip(keys, numbers, strict=True)]
        with open(self.output_dir / TRAIN_CSV, "a") as f:  # local first, as everything else
            f.writelines(f"{m.step},{m.key},{m.value!r}\n" for m in batch)
        for i in range(0, len(batch), 1000):
            self._send("log_batch", self.run_id, metrics=batch[i : i + 1000])

    def replay_train(self, rows: list[tuple[int, str, float]]) -> None:
        """Send recorded (step, key, value) training metrics as they are (upload of a run folder)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for step, key, value in rows]
        for i in range(0, len(batch), 1000):
            self._send("log_batch", self.run_id, metrics=batch[i : i + 1000])

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        if self.enabled:
            self._send("log_artifact", self.run_id, str(path), artifact_path)

    def mark_failed(self, run_id: str) -> None:
        """End another run (the partial one an outage left behind) FAILED."""
        self._send("set_terminated", run_id, "FAILED")

    def log_row(self, k: int, R: np.ndarray) -> None:
        """acc/*, forgetting/* at step k from rows 0..k of R."""
        self.flush()
        self.log_metrics(metrics.row_metrics(R, k), step=k)

    def log_missing_rows(self, R: np.ndarray, completed: int) -> None:
        """Log the rows 0..completed that the MLflow run does not hold yet (after a resume)."""
        if not self.enabled:
            return
        logged = {m.step for m in self._send("get_metric_history", self.run_id, "acc/task_0") or []}
        for k in range(completed + 1):
            if k not in logged:
                self.log_row(k, R)

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._send("log_batch", self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def log_model(
        self,
        model: torch.nn.Module,
        example_x: torch.Tensor,
        *,
        task_il: bool,
        logged_prefix: str,
        torchscript_path: Path,
        register_as: str | None = None,
    ) -> str | None:
        """Log the deployable model (MLflow PyTorch flavour, signature and input example, our package bundled as
        code) and its TorchScript file; register it under ``register_as``. Returns the model's URI."""
        if not self.enabled or self.unlogged is not None:
            return None
        import mlflow
        import mlflow.pytorch
        from mlflow.models import infer_signature

        mlflow.set_tracking_uri(self.uri)
        x = example_x[:2].detach().cpu()
        with torch.no_grad():
            out = model(x, 0) if task_il else model(x)
        params = {"task_id": 0} if task_il else None
        signature = infer_signature(x.numpy(), out.numpy(), params=params)
        package = Path(__file__).resolve().parent
        try:
            with mlflow.start_run(run_id=self.run_id):
                info = mlflow.pytorch.log_model(
                    model,
                    name="model",
                    signature=signature,
                    input_example=x.numpy(),
                    code_paths=[str(package)],
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
                    registered_model_name=register_as,
                    serialization_format="pickle",  # torch.export (pt2) cannot take quantised modules
                )
                mlflow.log_artifact(str(torchscript_path), artifact_path="torchscript")
        except Exception as e:
            self._lost(e)
            return None
        self._send("set_tag", self.run_id, "lepton.deployed_metrics", logged_prefix)
        self._send("set_tag", self.run_id, "lepton.model_uri", f"runs:/{self.run_id}/model")
        where = f"models:/{register_as}/{info.registered_model_version}" if register_as else info.model_uri
        log.info("deployable model logged: runs:/%s/model (%s)", self.run_id, where)
        return f"runs:/{self.run_id}/model"

    def ui_hint(self) -> str:
        if not self.enabled:
            return f"tracking=none: results are in {self.output_dir}"
        if self.unlogged:
            return f"MLflow could not record this run; results are in {self.output_dir}"
        store = self.uri
        return (
            f"MLflow run {self.run_id} in experiment '{self.experiment}' ({store}).\n"
            f"  Open it: mlflow ui --backend-store-uri {store}  then "
            f"http://127.0.0.1:5000/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        )


def load_logged_model(uri: str, tracking_uri: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The model at an MLflow URI (``runs:/<id>/model`` or ``models:/<name>/<version>``) and what its run logged."""
    import mlflow
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient

    store = resolve_uri(tracking_uri)
    mlflow.set_tracking_uri(store)
    client = MlflowClient(tracking_uri=store)
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].split("/", 1)[0]
    elif uri.startswith("models:/"):
        name, _, version = uri[len("models:/") :].partition("/")
        if not version:
            raise ValueError(f"{uri!r}: give the version, models:/<name>/<version>")
        run_id = client.get_model_version(name, version).run_id
    else:
        raise ValueError(f"{uri!r} is not an MLflow model URI: use runs:/<run_id>/model or models:/<name>/<version>")
    run = client.get_run(run_id)
    config_path = client.download_artifacts(run_id, "config.yaml")
    model = mlflow.pytorch.load_model(uri, map_location="cpu")
    return model, {
        "run_id": run_id,
        "config_yaml": Path(config_path).read_text(),
        "metrics": run.data.metrics,
        "logged_prefix": run.data.tags.get("lepton.deployed_metrics", "acc/"),
    }
