"""The tail after the stream: distillation into a student, dynamic int8, and the deployable model in MLflow."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from lepton_research import cli, compress
from lepton_research.config import ConfigError
from lepton_research.data.stream import TensorData
from lepton_research.deploy import Deployable
from lepton_research.scenarios import Scenario
from tests.conftest import ROOT


def test_distill_module_loss_is_the_weighted_sum_of_hand_computed_terms():
    """alpha * T^2 * KL + (1 - alpha) * CE, on a 1x3 case worked by hand: teacher logits (0, 0, ln 2) give
    p = (1/4, 1/4, 1/2); a student of zeros gives q = (1/3, 1/3, 1/3); KL = 1/2 ln(3/4) + 1/2 ln(3/2)."""
    teacher = nn.Linear(1, 3, bias=True)
    student = nn.Linear(1, 3, bias=True)
    with torch.no_grad():
        for m in (teacher, student):
            m.weight.zero_()
        teacher.bias.copy_(torch.tensor([0.0, 0.0, math.log(2)]))
        student.bias.zero_()
    module = compress.DistillModule(
        teacher, student, Scenario("class_il", 1, 3, 3), torch.optim.SGD, temperature=1.0, alpha=0.25
    )
    x, y = torch.zeros(1, 1), torch.tensor([2])
    loss = module.training_step((x, y, torch.zeros(1, dtype=torch.long)), 1)
    kl = 0.5 * math.log(3 / 4) + 0.5 * math.log(3 / 2)
    ce = math.log(3)  # -log(1/3)
    assert loss.item() == pytest.approx(0.25 * kl + 0.75 * ce, rel=1e-6)
    module.temperature = 2.0  # same logits, softer: T^2 * KL(softmax(t/2) || softmax(s/2)) with s = 0
    p = torch.tensor([1.0, 1.0, math.sqrt(2)]) / (2 + math.sqrt(2))
    kl_t2 = float((p * (p / (1 / 3)).log()).sum())
    assert module.training_step((x, y, torch.zeros(1, dtype=torch.long)), 1).item() == pytest.approx(
        0.25 * 4 * kl_t2 + 0.75 * ce, rel=1e-6
    )


def test_dynamic_int8_replaces_linear_layers_keeps_outputs_and_shrinks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    q = compress.quantize_dynamic_int8(model)
    assert not any(type(m) is nn.Linear for m in q.modules())
    x = torch.randn(32, 1, 8, 8)
    assert (q(x) - model(x)).abs().max().item() < 0.05
    assert compress.serialized_bytes(q) < 0.4 * compress.serialized_bytes(model)
    assert type(model[1]) is nn.Linear  # the float model is left as it was


def test_distillation_data_sources():
    def part(n, t):
        return TensorData(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long), torch.full((n,), t))

    from lepton_research.data.stream import Task, TaskStream

    stream = TaskStream(
        "s", Scenario("class_il", 2, 1, 2), [Task(t, [t], part(3 + t, t), part(1, t)) for t in (0, 1)], (2,)
    )
    assert len(compress.distillation_data("all", stream, None)) == 7
    assert compress.distillation_data("last_task", stream, None).task.unique().tolist() == [1]
    assert len(compress.distillation_data("buffer", stream, part(2, 0))) == 2
    with pytest.raises(ValueError, match="compress.data = 'buffer' needs a strategy"):
        compress.distillation_data("buffer", stream, None)


def test_deployable_task_il_takes_the_task_id_explicitly():
    torch.manual_seed(0)
    model = nn.Linear(3, 6)  # 3 tasks x 2 classes
    dep = Deployable(model, Scenario("task_il", 3, 2, 6))
    x = torch.randn(4, 3)
    full = model(x)
    torch.testing.assert_close(dep(x, 2), full[:, 4:6])
    torch.testing.assert_close(
        dep(x, torch.tensor([0, 1, 2, 0])), torch.stack([full[0, :2], full[1, 2:4], full[2, 4:], full[3, :2]])
    )
    with pytest.raises(ValueError, match="model\\(x, task_id\\)"):
        dep(x)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["compress=kd", "compress.data=buffer"], "compress.data = 'buffer' needs a strategy"),
        (["compress=kd", "compress.alpha=1.5"], "compress.alpha = 1.5"),
        (["compress=kd", "compress.data=memory"], "compress.data = 'memory'"),
        (["compress.quantize=int4"], "compress.quantize = 'int4'"),
    ],
)
def test_bad_compress_config_fails_before_training(tiny_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        cli.run(tiny_cfg("tracking=none", *overrides), output_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def _evaluate_in_a_fresh_process(uri: str, store: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-m", "lepton_research.deploy", "evaluate", uri, "--tracking-uri", store],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines() if line[:4].strip().isdigit()]
    assert rows, out.stdout
    return [(float(a), float(b)) for _, a, b in rows]


@pytest.mark.slow
def test_kd_int8_tail_logs_registers_and_reloads_exactly(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "strategy=replay",
        "compress=kd",
        "compress.iterations=60",
        "compress.quantize=dynamic_int8",
        "compress.latency_repeats=3",
        "tracking.log_model=true",
        "tracking.register_as=tiny-student",
        "tracking.experiment=kd",
    )
    out = cli.run(cfg, output_dir=tmp_path / "run")
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    local = json.loads((tmp_path / "run" / "compress.json").read_text())
    for key in ("student/acc/avg", "student/retention", "quantized/acc/avg", "compress/latency_ratio"):
        assert run.data.metrics[key] == pytest.approx(local[key])
    history = client.get_metric_history(run.info.run_id, "student/acc/task_4")
    assert [m.step for m in history] == [5]  # logged at step T, beside the teacher's last row
    assert local["compress/student_params"] == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert local["compress/param_ratio"] < 1 / 3
    assert 0 < local["compress/size_ratio"] < 0.5
    teacher_avg = float(np.mean(out["R"][-1]))
    assert local["student/retention"] == pytest.approx(local["student/acc/avg"] / teacher_avg, rel=1e-6)
    assert len(client.get_metric_history(run.info.run_id, "compress/loss")) > 0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "torchscript")} == {
        "torchscript/model_torchscript.pt"
    }
    # the registered (quantized student) model, loaded in a fresh process, reproduces the logged figures exactly
    rows = _evaluate_in_a_fresh_process("models:/tiny-student/1", cfg.tracking.uri)
    assert [a for a, _ in rows] == [b for _, b in rows]
    np.testing.assert_allclose([a for a, _ in rows], [local[f"quantized/acc/task_{j}"] for j in range(5)], atol=1e-6)


@pytest.mark.slow
def test_task_il_model_exports_with_task_id_and_torchscript_matches(tiny_cfg, tmp_path):
    cfg = tiny_cfg("scenario=task_il", "tracking.log_model=true", "tracking.experiment=deploy")
    out = cli.run(cfg, output_dir=tmp_path / "run")
    rows = _evaluate_in_a_fresh_process(f"runs:/{out['run_id']}/model", cfg.tracking.uri)
    np.testing.assert_allclose([a for a, _ in rows], out["R"][-1], atol=1e-6)  # no compression: the trained model
    assert [a for a, _ in rows] == [b for _, b in rows]
    scripted = torch.jit.load(str(tmp_path / "run" / "model_torchscript.pt"))
    from lepton_research.tracking import load_logged_model

    model, _ = load_logged_model(f"runs:/{out['run_id']}/model", cfg.tracking.uri)
    x, t = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4])
    torch.testing.assert_close(scripted(x, t), model(x, t))


def test_a_failing_tail_keeps_the_stream_results(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("compress=kd", "compress.iterations=5", "tracking.experiment=tail")

    def explode(*args, **kwargs):
        raise RuntimeError("compression exploded")

    monkeypatch.setattr(cli, "compress", explode)
    with pytest.raises(RuntimeError, match="exploded"):
        cli.run(cfg, output_dir=tmp_path / "run")
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tail").experiment_id])
    assert run.info.status == "FAILED"
    assert "final/avg_acc" in run.data.metrics and (tmp_path / "run" / "accuracy_matrix.csv").is_file()
    assert [m.step for m in client.get_metric_history(run.info.run_id, "acc/task_0")] == [0, 1, 2, 3, 4, 5]
