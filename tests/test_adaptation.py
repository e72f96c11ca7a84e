"""Fast adaptation: measured on a copy (weights and random stream untouched), more steps learn more, the series is
logged for every task at step = task index, and switching it on leaves R unchanged."""

from types import SimpleNamespace

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from lepton_research import cli
from lepton_research.adaptation import Adaptation
from lepton_research.config import ConfigError
from lepton_research.data.stream import TensorData
from lepton_research.scenarios import Scenario


def _blobs(n=400):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.3 + (2 * y - 1).unsqueeze(1).float()
    return TensorData(x, y, torch.zeros(n, dtype=torch.long))


def test_adaptation_works_on_a_copy_and_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    learner = SimpleNamespace(model=model, scenario=Scenario("domain_il", 1, 2, 2), active=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    out = Adaptation((1, 20), lr=0.5, batch_size=10, holdout=100).measure(learner, _blobs(), 3, seed=1)
    assert set(out) == {"adapt/task_3/steps_1", "adapt/task_3/steps_20"}
    assert out["adapt/task_3/steps_20"] >= 0.95  # two separated blobs: 20 steps of SGD learn them
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_adaptation_steps_are_validated(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="eval.adaptation_steps"):
        cli.run(tiny_cfg("eval.adaptation_steps=[0,5]"), output_dir=tmp_path)


@pytest.mark.slow
def test_adaptation_series_is_logged_and_changes_nothing_else(tiny_cfg, tmp_path):
    common = ("benchmark.n_tasks=2", "train.iterations=10")
    plain = cli.run(tiny_cfg(*common, "tracking=none"), output_dir=tmp_path / "plain")
    cfg = tiny_cfg(*common, "eval.adaptation_steps=[5,1]")
    measured = cli.run(cfg, output_dir=tmp_path / "measured")
    assert measured["R"] == plain["R"]
    client = MlflowClient(cfg.tracking.uri)
    for j in range(2):
        for n in (1, 5):
            history = client.get_metric_history(measured["run_id"], f"adapt/task_{j}/steps_{n}")
            assert [m.step for m in history] == [j] and 0.0 <= history[0].value <= 1.0
