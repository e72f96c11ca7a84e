"""End to end through cli.run on split_mnist_5k (real MNIST digits): the MLflow contract, determinism, failures."""

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from lepton_research import cli, loop, metrics
from lepton_research.tracking import read_matrix_csv

CONTRACT_ARTIFACTS = {
    "accuracy_matrix.csv",
    "accuracy_matrix.png",
    "forgetting_curves.png",
    "config.yaml",
    "summary.json",
}


def _client(cfg):
    return MlflowClient(tracking_uri=cfg.tracking.uri)


@pytest.mark.parametrize("scenario", ["task_il", "domain_il", "class_il"])
def test_mlflow_contract(tiny_cfg, tmp_path, scenario):
    cfg = tiny_cfg(f"scenario={scenario}", "tracking.experiment=contract")
    out = cli.run(cfg, output_dir=tmp_path / "run")
    client = _client(cfg)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    for tag in (
        "lepton.strategy",
        "lepton.benchmark",
        "lepton.scenario",
        "lepton.seed",
        "lepton.config_hash",
        "lepton.git_sha",
        "lepton.torch",
        "lepton.cpu_capability",
    ):
        assert tag in tags
    assert tags["lepton.torch"] == torch.__version__
    assert tags["lepton.scenario"] == scenario and tags["lepton.benchmark"] == "split_mnist_5k"
    assert run.data.params["train.iterations"] == "30" and run.data.params["optimizer.lr"] == "0.001"

    R = read_matrix_csv(tmp_path / "run" / "accuracy_matrix.csv")
    assert R.shape == (6, 5)
    np.testing.assert_allclose(R, np.array(out["R"]), atol=1e-6)
    for j in range(5):
        history = client.get_metric_history(run.info.run_id, f"acc/task_{j}")
        assert [m.step for m in history] == [0, 1, 2, 3, 4, 5]
        np.testing.assert_allclose([m.value for m in history], R[:, j], atol=1e-6)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "acc/avg_seen")] == [1, 2, 3, 4, 5]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "forgetting/avg")] == [2, 3, 4, 5]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "forgetting/task_0")] == [2, 3, 4, 5]
    loss_steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert loss_steps == list(range(0, 150, 10))  # the global step keeps counting across tasks

    recomputed = metrics.summary(R)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key, value in recomputed.items():
        assert run.data.metrics[key] == pytest.approx(value, abs=1e-5)
        assert summary[key] == pytest.approx(value, abs=1e-5)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == CONTRACT_ARTIFACTS


def test_scenarios_behave_as_the_literature_says(tiny_cfg, tmp_path):
    """Naive class-IL remembers only the last task; joint class-IL remembers all of them."""
    naive = cli.run(tiny_cfg("train.iterations=150", "tracking=none"), output_dir=tmp_path / "naive")
    joint = cli.run(tiny_cfg("train.iterations=150", "tracking=none", "strategy=joint"), output_dir=tmp_path / "joint")
    Rn, Rj = np.array(naive["R"]), np.array(joint["R"])
    assert Rn[5, 4] > 0.9 and Rn[5, :4].max() < 0.05  # only the last task is remembered
    assert naive["final/avg_acc"] < 0.25 and naive["final/forgetting"] > 0.9
    assert joint["final/avg_acc"] > 0.85 and joint["final/forgetting"] < 0.1
    assert Rj[5].min() > 0.7  # every task is still known at the end


def test_same_seed_same_matrix_to_the_last_digit(tiny_cfg, tmp_path):
    a = cli.run(tiny_cfg("seed=3", "tracking=none"), output_dir=tmp_path / "a")
    b = cli.run(tiny_cfg("seed=3", "tracking=none"), output_dir=tmp_path / "b")
    c = cli.run(tiny_cfg("seed=4", "tracking=none"), output_dir=tmp_path / "c")
    assert a["R"] == b["R"]
    assert a["R"] != c["R"]


def test_tracking_none_writes_only_local_files(tiny_cfg, tmp_path):
    cfg = tiny_cfg("tracking=none")
    cli.run(cfg, output_dir=tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "summary.json",
        "accuracy_matrix.csv",
        "checkpoint.pt",
    }
    assert not (tmp_path / "mlflow.db").exists()


def test_failed_run_is_marked_failed_and_keeps_rows(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("tracking.experiment=failing")
    real = loop.evaluate_row

    def explode(learner, stream, k):
        if k == 3:
            raise RuntimeError("evaluation exploded")
        return real(learner, stream, k)

    monkeypatch.setattr(loop, "evaluate_row", explode)
    with pytest.raises(RuntimeError, match="exploded"):
        cli.run(cfg, output_dir=tmp_path / "run")
    client = _client(cfg)
    (run,) = client.search_runs([client.get_experiment_by_name("failing").experiment_id])
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "acc/task_0")] == [0, 1, 2]
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) > 0


def test_resume_refuses_a_different_config(tiny_cfg, tmp_path):
    cli.run(tiny_cfg("tracking=none"), output_dir=tmp_path / "run")
    with pytest.raises(ValueError, match="different config"):
        cli.run(tiny_cfg("tracking=none", "resume=true", "seed=9"), output_dir=tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no checkpoint.pt"):
        cli.run(tiny_cfg("tracking=none", "resume=true"), output_dir=tmp_path / "elsewhere")
