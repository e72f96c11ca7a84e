"""Sweeps past one process: launchers, Optuna, the sweep tag and compare, parallel sqlite, a tracking server outage."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from lepton_research import cli, compare, loop, mlflow_store
from lepton_research.tracking import UNLOGGED
from lepton_research.upload import upload
from tests.conftest import ROOT, run_py

TINY = ["benchmark=split_mnist_5k", "train.iterations=10", "tracking.log_model=false"]


def _runs(uri, experiment="lepton"):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


# ---- the retrying store --------------------------------------------------------------------------
def test_with_retry_retries_a_locked_database_and_nothing_else(monkeypatch):
    monkeypatch.setattr(mlflow_store.time, "sleep", lambda s: None)
    calls = []

    def locked_twice():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert mlflow_store.with_retry(locked_twice) == "ok" and len(calls) == 3
    calls.clear()

    def bad_request():
        calls.append(1)
        raise ValueError("INVALID_PARAMETER_VALUE: metric key is too long")

    with pytest.raises(ValueError, match="INVALID_PARAMETER_VALUE"):
        mlflow_store.with_retry(bad_request)
    assert len(calls) == 1


def test_two_jobs_creating_one_experiment_get_the_same_id(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow_store.open_client(uri)
    first = mlflow_store.get_or_create_experiment(client, "race")

    class LateClient:  # sees no experiment, then loses the race to create it
        looked = 0

        def get_experiment_by_name(self, name):
            self.looked += 1
            return None if self.looked == 1 else client.get_experiment_by_name(name)

        def create_experiment(self, name):
            return client.create_experiment(name)  # raises: already exists

    assert mlflow_store.get_or_create_experiment(LateClient(), "race") == first


@pytest.mark.slow
def test_eight_parallel_joblib_jobs_on_one_fresh_sqlite_store(tmp_path):
    """8 jobs, 4 at a time, against a store that does not exist yet: every run FINISHED with every metric."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = run_py(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        *TINY,
        "strategy=naive,joint",
        "seed=0,1,2,3",
        f"tracking.uri={uri}",
        f"hydra.sweep.dir={tmp_path}/sweep",
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    client, runs = _runs(uri)
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["lepton.sweep"] for r in runs} == {f"{tmp_path}/sweep"}
    for r in runs:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "acc/task_0")] == [0, 1, 2, 3, 4, 5]
        assert "final/avg_acc" in r.data.metrics
    # compare by sweep id: one line per strategy, 4 seeds each, bands are the s.e.m. of the logged values
    result = compare.compare(uri, None, f"{tmp_path}/sweep", tmp_path / "cmp", ["lepton.strategy"])
    assert set(result["groups"]) == {(("strategy", "naive"),), (("strategy", "joint"),)}
    naive = result["groups"][(("strategy", "naive"),)]["acc/avg_seen"]
    assert naive.shape == (4, 5)
    finals = [r.data.metrics["final/avg_acc"] for r in runs if r.data.tags["lepton.strategy"] == "naive"]
    np.testing.assert_allclose(sorted(naive[:, -1]), sorted(finals), atol=1e-6)
    sem = np.std(finals, ddof=1) / 2
    assert f"{np.mean(finals):.4f} +- {sem:.4f}" in result["markdown"]
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 10_000
    summary = client.get_run(result["summary_run"])
    assert summary.data.tags["lepton.kind"] == "comparison"
    assert {a.path for a in client.list_artifacts(summary.info.run_id)} == {"compare.png", "compare.md"}


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job_end_to_end(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = f"hydra.sweep.dir={tmp_path}/sw"
    out = run_py("-m", "hydra/launcher=submitit_local", *TINY, f"tracking.uri={uri}", sweep, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    _, runs = _runs(uri)
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert list((tmp_path / "sw").glob(".submitit/*/*_log.out")), "submitit's own job logs"


@pytest.mark.slow
def test_optuna_search_three_trials_tagged_with_the_study(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = run_py(
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        *TINY,
        f"tracking.uri={uri}",
        f"hydra.sweep.dir={tmp_path}/opt",
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    _, runs = _runs(uri)
    assert len(runs) == 3 and {r.data.tags["lepton.study"] for r in runs} == {"ewc-lambda"}
    assert {r.data.tags["lepton.strategy"] for r in runs} == {"ewc"}
    lambdas = {float(r.data.params["strategy.lambda_"]) for r in runs}
    assert len(lambdas) == 3 and all(1e2 <= v <= 1e10 for v in lambdas)
    best = yaml.safe_load((tmp_path / "opt" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(r.data.metrics["final/avg_acc"] for r in runs), abs=1e-6)


# ---- a tracking server that goes away mid-run -------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(tmp_path, port):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("mlflow server did not start within 180 s")


def _stop(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_server_down_mid_run_keeps_training_then_upload_records_it(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_server(tmp_path, port)
    real = loop.evaluate_row

    def stop_the_server_after_task_2(learner, stream, k):
        if k == 3:
            _stop(server)
        return real(learner, stream, k)

    monkeypatch.setattr(loop, "evaluate_row", stop_the_server_after_task_2)
    try:
        out = cli.run(tiny_cfg(f"tracking.uri={uri}", "tracking.experiment=outage"), output_dir=tmp_path / "run")
    finally:
        if server.poll() is None:
            _stop(server)
    assert out["unlogged"] and (tmp_path / "run" / UNLOGGED).is_file()
    assert np.array(out["R"]).shape == (6, 5)  # training went on to the end
    assert "python -m lepton_research.upload" in (tmp_path / "run" / UNLOGGED).read_text()

    server = _start_server(tmp_path, port)  # the store is back
    try:
        run_id = upload(tmp_path / "run", uri)
        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run_id, "acc/task_0")] == [0, 1, 2, 3, 4, 5]
        np.testing.assert_allclose(
            [m.value for m in client.get_metric_history(run_id, "acc/task_4")], np.array(out["R"])[:, 4], atol=1e-6
        )
        assert len(client.get_metric_history(run_id, "train/loss")) == 15
        assert run.data.metrics["final/avg_acc"] == pytest.approx(out["final/avg_acc"], abs=1e-6)
        assert run.data.tags["lepton.replaces"] == out["run_id"]
        assert client.get_run(out["run_id"]).info.status == "FAILED"  # the partial run the outage left
        assert not (tmp_path / "run" / UNLOGGED).exists()
    finally:
        _stop(server)


def test_upload_of_an_unfinished_folder_names_the_missing_file(tmp_path):
    (tmp_path / "tracking.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="accuracy_matrix.csv is missing"):
        upload(tmp_path, f"sqlite:///{tmp_path}/x.db")


def test_compare_without_runs_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lepton_research.compare", "--sweep", "nope", "--uri", f"sqlite:///{tmp_path}/m.db"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "no FINISHED runs found for sweep 'nope'" in out.stderr


# ---- DDP over 2 CPU processes -----------------------------------------------------------------------
@pytest.mark.slow
def test_ddp_cpu_one_mlflow_run_and_the_single_process_matrix(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = ["benchmark=split_mnist_5k", "train.iterations=60", "strategy=joint", "tracking.log_model=false"]
    ddp = run_py("compute=ddp_cpu", *common, f"tracking.uri={uri}", f"hydra.run.dir={tmp_path}/ddp", timeout=900)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert (tmp_path / "ddp" / "train_ddp_process_1.log").is_file(), "rank 1 ran"
    single = run_py(*common, "tracking=none", f"hydra.run.dir={tmp_path}/single", timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    client, runs = _runs(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 0 alone talks to MLflow
    from lepton_research.tracking import read_matrix_csv

    R_ddp = read_matrix_csv(tmp_path / "ddp" / "accuracy_matrix.csv")
    R_one = read_matrix_csv(tmp_path / "single" / "accuracy_matrix.csv")
    np.testing.assert_allclose(R_ddp[0], R_one[0], atol=1e-6)  # same initial weights, same evaluation
    assert np.abs(R_ddp - R_one).max() < 0.05  # half batches per rank, averaged gradients: the same steps
    # rank 1 computed the same matrix (the counts are summed across ranks)
    rank1 = (tmp_path / "ddp" / "train_ddp_process_1.log").read_text()
    assert f"final/avg_acc {runs[0].data.metrics['final/avg_acc']:.4f}" in rank1
