"""The math of the strategies against hand computations, and every strategy yaml through a real run."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from torch import nn

from lepton_research import cli, loop
from lepton_research.config import ConfigError
from lepton_research.data.stream import Task, TensorData
from lepton_research.distill import distillation_loss
from lepton_research.scenarios import Scenario
from lepton_research.strategies.ewc import EWC, per_sample_fisher
from lepton_research.strategies.lwf import LwF
from lepton_research.strategies.online_ewc import OnlineEWC
from lepton_research.strategies.replay import Replay
from lepton_research.strategies.si import SI
from tests.conftest import compose_cfg

STRATEGIES = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "strategy").glob("*.yaml"))
# overrides that keep a slow strategy's tiny run tiny (La-MAML: one second-order inner step per example by default)
FAST = {"maml": ("train.batch_size=8", "strategy.glances=2", "strategy.inner_batch_size=8")}


class Vector(nn.Module):
    def __init__(self, values):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(values, dtype=torch.float64))


# ---- distillation ---------------------------------------------------------------------------------
def test_distillation_zero_when_student_equals_teacher():
    z = torch.randn(4, 5)
    assert distillation_loss(z, z.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_distillation_hand_computed_2x3_with_t_squared():
    student = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[3.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    # row 1: p = softmax(teacher/2), q = softmax(student/2) share a normaliser, so log p - log q = [1, 0, -1]
    # and KL = p1 - p3 = (e^1.5 - e^0.5) / (e^1.5 + e^1 + e^0.5); row 2: KL = 0. Batch mean, times T^2 = 4.
    kl_row1 = (math.exp(1.5) - math.exp(0.5)) / (math.exp(1.5) + math.exp(1.0) + math.exp(0.5))
    assert distillation_loss(student, teacher, 2.0).item() == pytest.approx(4 * kl_row1 / 2, rel=1e-6)
    # the T^2 factor: at T = 1 the same logits give the plain KL
    p, q = F.softmax(teacher, 1), F.softmax(student, 1)
    plain = (p * (p.log() - q.log())).sum(1).mean().item()
    assert distillation_loss(student, teacher, 1.0).item() == pytest.approx(plain, rel=1e-6)


# ---- EWC ------------------------------------------------------------------------------------------
def test_ewc_penalty_zero_at_anchor_and_hand_value():
    model = Vector([1.0, -2.0, 0.5])
    learner = SimpleNamespace(model=model)
    ewc = EWC(lambda_=10.0)
    ewc.consolidate(0, {"theta": torch.tensor([2.0, 0.0, 4.0], dtype=torch.float64)}, learner)
    assert ewc.penalty(learner).item() == 0.0
    with torch.no_grad():
        model.theta.copy_(torch.tensor([1.5, 1.0, 0.0], dtype=torch.float64))
    # lambda/2 * (2 * 0.5^2 + 0 * 3^2 + 4 * 0.5^2) = 5 * (0.5 + 1.0) = 7.5
    assert ewc.penalty(learner).item() == pytest.approx(7.5)
    # a second task's Fisher and anchor add their own term
    ewc.consolidate(1, {"theta": torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)}, learner)
    with torch.no_grad():
        model.theta.copy_(torch.tensor([1.5, 3.0, 0.0], dtype=torch.float64))
    # task 0: 5 * (2*0.25 + 0 + 4*0.25) = 7.5; task 1 (anchor [1.5, 1, 0]): 5 * (1 * 2^2) = 20
    assert ewc.penalty(learner).item() == pytest.approx(27.5)


def test_online_ewc_running_fisher_and_gamma_in_the_penalty():
    model = Vector([0.0, 0.0])
    learner = SimpleNamespace(model=model)
    ewc = OnlineEWC(lambda_=2.0, gamma=0.5)
    fishers = iter(
        [
            {"theta": torch.tensor([1.0, 2.0], dtype=torch.float64)},
            {"theta": torch.tensor([3.0, 0.0], dtype=torch.float64)},
        ]
    )
    ewc.estimate_fisher = lambda task, learner: next(fishers)
    ewc.after_task(None, learner)
    ewc.after_task(None, learner)
    np.testing.assert_allclose(ewc.fisher_0_theta.numpy(), [0.5 * 1 + 3, 0.5 * 2 + 0])  # gamma F_old + F_new
    assert ewc.n_consolidated() == 1
    with torch.no_grad():
        model.theta.copy_(torch.tensor([1.0, 1.0], dtype=torch.float64))
    # lambda/2 * gamma * (3.5 * 1 + 1 * 1) = 1 * 0.5 * 4.5
    assert ewc.penalty(learner).item() == pytest.approx(2.25)


def loop_fisher(model, logits_of, x, t, targets):
    """The definition, one sample at a time: mean over samples of the squared gradient of that sample's NLL."""
    slow = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(logits_of(model(x[i : i + 1]), t[i : i + 1]), targets[i : i + 1]).backward()
        for n, p in model.named_parameters():
            slow[n] += p.grad.pow(2) / len(x)
    return slow


@pytest.mark.parametrize("method", ["vmap", "factored"])
@pytest.mark.parametrize("labels", ["empirical", "argmax", "true"])
def test_per_sample_fisher_equals_per_sample_loop(labels, method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    x, y, t = torch.randn(37, 6), torch.randint(0, 4, (37,)), torch.zeros(37, dtype=torch.long)
    active = torch.tensor([True, True, True, False])  # class-IL style: one unit not yet active
    scenario = Scenario("class_il", 2, 2, 4)

    def logits_of(out, task_ids):
        return scenario.select(out, task_ids, active)

    chunk = 8 if method == "vmap" else 37  # the factored path labels all 37 samples in one batch
    fast = per_sample_fisher(
        model, logits_of, x, t, y, labels, chunk=8, generator=torch.Generator().manual_seed(1), method=method
    )
    if labels == "empirical":
        targets = y.clamp(max=2)
        fast = per_sample_fisher(model, logits_of, x, t, targets, labels, chunk=8, method=method)
    elif labels == "argmax":
        targets = logits_of(model(x), t).argmax(1)
    else:
        g = torch.Generator().manual_seed(1)
        targets = torch.cat(
            [
                torch.multinomial(logits_of(model(x[i : i + chunk]), t[i : i + chunk]).softmax(1), 1, generator=g)
                for i in range(0, 37, chunk)
            ]
        ).squeeze(1)
    slow = loop_fisher(model, logits_of, x, t, targets)
    for n in slow:
        torch.testing.assert_close(fast[n], slow[n], atol=1e-6, rtol=1e-5)
        assert slow[n].abs().sum() > 0


class Shared(nn.Module):
    """One Linear layer applied twice: per-sample squares do not factor, so auto must fall back to vmap."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, x):
        return self.layer(torch.relu(self.layer(x)))


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 4)),  # a non-Linear parameter
        Shared,
    ],
)
def test_auto_fisher_falls_back_to_vmap_where_factoring_does_not_hold(make_model):
    torch.manual_seed(0)
    model = make_model()
    x, y, t = torch.randn(9, 4), torch.randint(0, 4, (9,)), torch.zeros(9, dtype=torch.long)

    def logits_of(out, task_ids):
        return out

    auto = per_sample_fisher(model, logits_of, x, t, y, "empirical", method="auto")
    slow = loop_fisher(model, logits_of, x, t, y)
    for n in slow:
        torch.testing.assert_close(auto[n], slow[n], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="fisher_method = 'factored'"):
        per_sample_fisher(model, logits_of, x, t, y, "empirical", method="factored")


# ---- SI -------------------------------------------------------------------------------------------
def test_si_importance_of_a_quadratic_matches_hand_computation():
    """L = 1/2 (1 * th1^2 + 2 * th2^2), SGD lr 0.1, two steps from (1, 1), xi = 0.1.

    step 1: g = (1, 2),     dtheta = (-0.1, -0.2),   W = (0.1, 0.4),      theta = (0.9, 0.8)
    step 2: g = (0.9, 1.6), dtheta = (-0.09, -0.16), W = (0.181, 0.656),  theta = (0.81, 0.64)
    Delta = (-0.19, -0.36): omega = (0.181 / (0.0361 + 0.1), 0.656 / (0.1296 + 0.1))
    """
    model = Vector([1.0, 1.0])
    learner = SimpleNamespace(model=model)
    si = SI(c=1.0, xi=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    si.before_task(None, learner)
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    for _ in range(2):
        opt.zero_grad()
        (0.5 * (a * model.theta**2).sum()).backward()
        si.after_backward(learner)
        opt.step()
        si.after_step(learner)
    si.after_task(None, learner)
    np.testing.assert_allclose(si.omega_theta.numpy(), [0.181 / 0.1361, 0.656 / 0.2296], rtol=1e-12)
    np.testing.assert_allclose(si.prev_theta.numpy(), [0.81, 0.64], rtol=1e-12)
    # the stored anchor is a copy, not a view of the live weights
    with torch.no_grad():
        model.theta.add_(1.0)
    np.testing.assert_allclose(si.prev_theta.numpy(), [0.81, 0.64], rtol=1e-12)
    assert si.penalty(learner).item() == pytest.approx((0.181 / 0.1361 + 0.656 / 0.2296) * 1.0)


def test_si_path_integral_uses_the_task_loss_gradient_only():
    """With a penalty active, W must come from the task loss alone: same W as without the penalty's gradient."""
    model = Vector([0.5, -0.5])
    learner = SimpleNamespace(model=model)
    si = SI(c=3.0, xi=0.1)
    si.register_buffer("omega_theta", torch.tensor([1.0, 2.0], dtype=torch.float64))
    si.register_buffer("prev_theta", torch.tensor([0.0, 0.0], dtype=torch.float64))
    si.before_task(None, learner)
    loss = (model.theta**2).sum()  # task loss, gradient 2 theta = (1, -1)
    total = si.loss(learner, None, None, loss)
    total.backward()
    si.after_backward(learner)
    torch.testing.assert_close(si._task_grads["theta"], torch.tensor([1.0, -1.0], dtype=torch.float64))


# ---- replay ---------------------------------------------------------------------------------------
def _task(index, classes, n_per_class=30):
    y = torch.tensor(classes).repeat_interleave(n_per_class)
    x = torch.randn(len(y), 1, 2, 2)
    return Task(index, classes, TensorData(x, y.clone(), torch.full_like(y, index)), None)


@pytest.mark.parametrize("selection", ["class_balanced", "reservoir"])
def test_replay_memory_budget(selection):
    torch.manual_seed(0)
    learner = SimpleNamespace(scenario=Scenario("class_il", 3, 2, 6))
    replay = (
        Replay(memory_per_class=5, selection=selection)
        if selection == "class_balanced"
        else Replay(memory_per_class=None, memory_size=12, selection=selection)
    )
    for t, classes in enumerate([[0, 1], [2, 3], [4, 5]]):
        replay.after_task(_task(t, classes), learner)
    if selection == "class_balanced":
        assert np.bincount(replay.mem_class.numpy()).tolist() == [5] * 6
    else:
        assert len(replay.mem_x) == 12 and int(replay.n_seen) == 180
        assert len(set(replay.mem_class.tolist())) >= 3  # a uniform sample of the whole stream
    np.testing.assert_array_equal(replay.mem_y.numpy(), replay.mem_class.numpy())  # class-IL targets are global
    x, y, t = replay.train_batch(
        (torch.zeros(8, 1, 2, 2), torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long))
    )
    assert len(x) == 16 and len(y) == 16 and len(t) == 16


def test_replay_rejects_impossible_budgets():
    with pytest.raises(ValueError, match="exactly one"):
        Replay(memory_per_class=5, memory_size=10)
    with pytest.raises(ValueError, match="selection"):
        Replay(selection="random")


# ---- every strategy through a real run, and resume with strategy state ------------------------------
@pytest.mark.parametrize("scenario", ["task_il", "domain_il", "class_il"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs(tiny_cfg, tmp_path, strategy, scenario):
    cfg = tiny_cfg(
        f"strategy={strategy}",
        f"scenario={scenario}",
        "train.iterations=12",
        "benchmark.n_tasks=2",
        "tracking.experiment=all-strategies",
        *FAST.get(strategy, ()),
    )
    if strategy == "progressive" and scenario != "task_il":  # the task id picks the column: task-IL only
        with pytest.raises(ConfigError, match="scenario=task_il"):
            cli.run(cfg, output_dir=tmp_path / "run")
        return
    out = cli.run(cfg, output_dir=tmp_path / "run")
    R = np.array(out["R"])
    assert np.isfinite(R).all()
    client = MlflowClient(cfg.tracking.uri)
    if strategy in ("ewc", "online_ewc", "si", "lwf"):
        history = client.get_metric_history(out["run_id"], "train/penalty")
        assert history and all(m.step >= 12 for m in history)  # the extra term exists from the second task on
    if strategy == "progressive":  # zero forgetting, and the price: a column more after the first task
        assert R[2, 0] == R[1, 0] and out["final/forgetting"] == 0.0
        params = sorted(client.get_metric_history(out["run_id"], "model/params"), key=lambda m: m.step)
        assert [m.step for m in params] == [0, 1, 2] and params[0].value == params[1].value < params[2].value
        assert [m.step for m in client.get_metric_history(out["run_id"], "model/params/column_1")] == [2]
    if strategy == "maml":  # the rates are learned, every batch entered the memory, 2 glances = 2 steps a batch
        state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["strategy"]
        assert (state["alphas.0"] != 0.15).any() and int(state["n_seen"]) == 2 * 12 * 8
        assert len(state["mem_x"]) == 192 and state["mem_x"].shape[1:] == (1, 28, 28)
        history = client.get_metric_history(out["run_id"], "train/loss")
        assert sorted(m.step for m in history) == [2, 22, 26, 46]  # logged at batches 0 and 10 of each task


# maml's state (rates, memory) is restored by the same load_state as replay's memory; left out to keep CI short
@pytest.mark.parametrize("strategy", ["ewc", "online_ewc", "si", "lwf", "replay", "naive-keep-adam", "progressive"])
def test_resume_restores_strategy_state(tiny_cfg, tmp_path, monkeypatch, strategy):
    extra = (
        ("strategy=naive", "train.reset_optimizer=false")
        if strategy == "naive-keep-adam"
        else (f"strategy={strategy}", *FAST.get(strategy, ()))
    )
    if strategy == "progressive":
        extra = (*extra, "scenario=task_il")
    overrides = (*extra, "tracking=none", "benchmark.n_tasks=5", "train.iterations=15")
    clean = cli.run(tiny_cfg(*overrides), output_dir=tmp_path / "clean")
    real = loop.save_checkpoint

    def die_after_task_3(path, completed, *args, **kwargs):
        real(path, completed, *args, **kwargs)
        if completed == 3:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(loop, "save_checkpoint", die_after_task_3)
    with pytest.raises(KeyboardInterrupt):
        cli.run(tiny_cfg(*overrides), output_dir=tmp_path / "killed")
    monkeypatch.setattr(loop, "save_checkpoint", real)
    resumed = cli.run(tiny_cfg(*overrides, "resume=true"), output_dir=tmp_path / "killed")
    assert resumed["R"] == clean["R"]


def test_distillation_with_a_wider_student_pads_the_teacher_with_zeros():
    """Class-IL: teacher over 2 old classes, student over 2 old + 2 new; hand-computed at T = 1."""
    teacher = torch.tensor([[2.0, 0.0]])
    student = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    p = torch.softmax(teacher, 1)[0]
    log_q = torch.log_softmax(student, 1)[0, :2]
    expected = (p * (p.log() - log_q)).sum().item()
    assert distillation_loss(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # a student equal to the teacher on the old classes and -inf elsewhere has nothing left to learn
    same = torch.tensor([[2.0, 0.0, float("-inf"), float("-inf")]])
    assert distillation_loss(same, teacher, 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_distillation_mean_over_units_divides_by_the_students_width():
    """van de Ven's earlier loss_fn_kd (commit e17b714): (-p * log q).mean() over batch and units, p padded with
    zeros to the student's 4 units. Cross-entropy and KL differ by the teacher's entropy: compare KL / 4."""
    teacher = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    student = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.5, -1.0, 2.0, 0.0]])
    p = torch.softmax(teacher / 2, 1)
    log_q = torch.log_softmax(student / 2, 1)[:, :2]
    kl_rows = (p * (p.log() - log_q)).sum(1)
    summed = 4 * kl_rows.mean().item()  # T^2 = 4
    assert distillation_loss(student, teacher, 2.0).item() == pytest.approx(summed, rel=1e-6)
    assert distillation_loss(student, teacher, 2.0, over_units="mean").item() == pytest.approx(summed / 4, rel=1e-6)
    # their cross-entropy form, written out, has the same gradient with respect to the student
    s1 = student.clone().requires_grad_(True)
    padded = torch.cat([p, torch.zeros(2, 2)], 1)
    (4 * (-padded * torch.log_softmax(s1 / 2, 1)).mean()).backward()
    s2 = student.clone().requires_grad_(True)
    distillation_loss(s2, teacher, 2.0, over_units="mean").backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-7)
    with pytest.raises(ValueError, match="over_units"):
        distillation_loss(student, teacher, 2.0, over_units="avg")
    with pytest.raises(ValueError, match="over_units"):
        LwF(over_units="avg")


def test_vandeven2019_presets_distil_with_their_earlier_form_and_the_default_is_the_kl():
    for scenario in ("task", "domain", "class"):
        cfg = compose_cfg([f"experiment=vandeven2019/split_mnist_{scenario}_il", "strategy=lwf"])
        assert (cfg.strategy.over_units, cfg.strategy.temperature, cfg.strategy.alpha) == ("mean", 2.0, None)
    assert compose_cfg(["strategy=lwf"]).strategy.over_units == "sum"


def test_ewc_closed_form_gradient_equals_autograd_of_the_summed_penalty():
    """Three tasks' quadratics folded into one: the step's value and the gradient added after backward equal
    autograd of lambda/2 sum_k F_k (theta - theta*_k)^2 written out term by term."""
    torch.manual_seed(0)
    model = Vector([0.0, 0.0, 0.0, 0.0])
    learner = SimpleNamespace(model=model)
    ewc = EWC(lambda_=3.0)
    fishers = [torch.rand(4, dtype=torch.float64) for _ in range(3)]
    fishers[1][2] = 0.0  # a unit no task cares about in one task ...
    anchors = [torch.randn(4, dtype=torch.float64) for _ in range(3)]
    for k in range(3):
        with torch.no_grad():
            model.theta.copy_(anchors[k])
        ewc.consolidate(k, {"theta": fishers[k]}, learner)
    with torch.no_grad():
        model.theta.copy_(torch.randn(4, dtype=torch.float64))
    theta = model.theta.detach().clone().requires_grad_(True)
    reference = 0.5 * 3.0 * sum((f * (theta - a).pow(2)).sum() for f, a in zip(fishers, anchors, strict=True))
    reference.backward()
    ce = torch.zeros((), dtype=torch.float64)
    total = ewc.loss(learner, None, None, ce)
    assert total.item() == pytest.approx(reference.item(), rel=1e-10)
    model.theta.grad = None
    ewc.after_backward(learner)
    torch.testing.assert_close(model.theta.grad, theta.grad, rtol=1e-10, atol=1e-12)
    assert ewc.penalty(learner).item() == pytest.approx(reference.item(), rel=1e-10)
