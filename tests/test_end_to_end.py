"""`python run.py` as a user runs it: every scenario, a multirun sweep, and a SIGKILL followed by resume=true."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from lepton_research.tracking import read_matrix_csv
from tests.conftest import ROOT, run_py

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", ["task_il", "domain_il", "class_il"])
def test_run_py_each_scenario(tmp_path, scenario):
    done = run_py(
        "benchmark=split_mnist_5k",
        f"scenario={scenario}",
        "train.iterations=40",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    for t in range(1, 6):
        assert f"task {t}/5" in log
    assert "accuracy matrix" in log and "final/avg_acc" in log and "mlflow ui --backend-store-uri" in log
    assert read_matrix_csv(tmp_path / "run" / "accuracy_matrix.csv").shape == (6, 5)


def test_multirun_sweep_is_one_experiment(tmp_path):
    done = run_py(
        "-m",
        "benchmark=split_mnist_5k",
        "strategy=naive,joint",
        "seed=0,1",
        "train.iterations=20",
        "tracking.experiment=sweep",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.sweep.dir={tmp_path}/multirun",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    cells = {(r.data.tags["lepton.strategy"], r.data.tags["lepton.seed"]) for r in runs}
    assert cells == {("naive", "0"), ("naive", "1"), ("joint", "0"), ("joint", "1")}


def _completed(run_dir):
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        return 0
    import torch

    try:
        return torch.load(ckpt, map_location="cpu", weights_only=False)["completed"]
    except Exception:  # being replaced right now
        return 0


def test_sigkill_during_task_3_then_resume_equals_uninterrupted(tmp_path):
    common = [
        "benchmark=split_mnist_5k",
        "train.iterations=400",
        "seed=5",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *common, f"hydra.run.dir={killed}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while _completed(killed) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # now inside task 3 (index 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    completed = _completed(killed)
    assert 2 <= completed < 5, f"the kill came at {completed} completed tasks; the run must be killed mid-stream"

    resumed = run_py(*common, "resume=true", f"hydra.run.dir={killed}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming after task {completed} of 5" in resumed.stdout + resumed.stderr

    clean = run_py(*common, f"hydra.run.dir={tmp_path}/clean", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr[-3000:]
    np.testing.assert_array_equal(
        read_matrix_csv(killed / "accuracy_matrix.csv"),
        read_matrix_csv(tmp_path / "clean" / "accuracy_matrix.csv"),
    )
    # the resumed run continued the same MLflow run, which now holds every step once
    run_id = json.loads((killed / "summary.json").read_text())["run_id"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "acc/task_0")] == [0, 1, 2, 3, 4, 5]


def test_run_py_maml_with_fast_adaptation(tmp_path):
    """La-MAML (manual optimisation) and the fast-adaptation series through run.py; progressive's run is in the
    strategy loop of test_strategies.py."""
    done = run_py(
        "benchmark=split_mnist_5k",
        "benchmark.n_tasks=2",
        "strategy=maml",
        "scenario=class_il",
        "train.batch_size=8",
        "train.iterations=6",
        "strategy.glances=1",
        "strategy.inner_batch_size=8",
        "eval.adaptation_steps=[1,5]",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("lepton").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.tags["lepton.strategy"] == "maml"
    assert {"model/params", "train/loss", "final/avg_acc"} <= set(run.data.metrics)
    assert {f"adapt/task_{j}/steps_{n}" for j in (0, 1) for n in (1, 5)} <= set(run.data.metrics)
