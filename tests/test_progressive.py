"""Progressive nets: frozen columns are bit-identical after training a new one, no gradient reaches them, the
parameter count matches a hand count, checkpoints of k columns load. Zero forgetting in R and the model/params
series of a real run: test_strategies.py::test_every_strategy_runs; resume: test_resume_restores_strategy_state."""

import pytest
import torch
from torch import nn

from lepton_research import cli
from lepton_research.config import ConfigError
from lepton_research.models.mlp import MLP
from lepton_research.models.progressive import ProgressiveNet
from lepton_research.scenarios import Scenario
from lepton_research.strategies.progressive import Progressive


def _net(hidden=(3,), n_heads=2, width=2, in_shape=(4,)):
    torch.manual_seed(0)
    return ProgressiveNet(MLP(in_shape=in_shape, out_features=n_heads * width, hidden=hidden), n_heads, width)


def test_training_a_new_column_leaves_frozen_columns_bit_identical_and_without_gradients():
    net = _net(hidden=(5, 5))
    x = torch.randn(16, 4)
    net.grow_to(2)
    net.freeze_before(1)
    before = net.column_outputs(x)[0].clone()
    frozen = [p.clone() for p in net.columns[0].parameters()]
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        net(x).pow(2).mean().backward()
        assert all(p.grad is None for p in net.columns[0].parameters())
        assert all(p.grad is not None for p in net.columns[1].parameters())
        optimizer.step()
    assert torch.equal(net.column_outputs(x)[0], before)
    assert all(torch.equal(a, b) for a, b in zip(frozen, net.columns[0].parameters(), strict=True))
    assert net.columns[1].laterals["1"].alpha.item() != 0.1  # the adapter's scalar is learned
    out = net(x)  # head 0 from column 0, head 1 from column 1
    torch.testing.assert_close(out[:, :2], net.column_outputs(x)[0][:, :2])
    torch.testing.assert_close(out[:, 2:], net.column_outputs(x)[1][:, 2:])


def test_parameter_count_by_hand_and_row_metrics():
    # MLP 4-3-4. Column: 4*3+3 + 3*4+4 = 31. Column k >= 1 adds an adapter into the head:
    # alpha 1 + V (k*3 -> 3: 9k + 3) + U (3 -> 4, no bias: 12) = 16 + 9k: columns 31, 56, 65
    net = _net()
    net.grow_to(3)
    assert net.column_params() == [31, 56, 65]
    learner = type("L", (), {"model": net})()
    assert Progressive().row_metrics(learner) == {
        "model/params": 152.0,
        "model/params/column_0": 31.0,
        "model/params/column_1": 56.0,
        "model/params/column_2": 65.0,
    }


def test_checkpoint_of_three_columns_loads_into_a_fresh_net():
    net = _net()
    net.grow_to(3)
    fresh = _net()
    fresh.load_state_dict(net.state_dict())
    x = torch.randn(7, 4)
    assert len(fresh.columns) == 3 and torch.equal(fresh(x), net(x))


def test_columns_of_a_small_cnn():
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 4)
    )
    net = ProgressiveNet(cnn, 2, 2)
    net.grow_to(2)
    assert net(torch.randn(3, 1, 6, 6)).shape == (3, 4)
    assert isinstance(net.columns[1].laterals["1"].U, nn.Conv2d)


def test_progressive_refuses_class_il_and_domain_il(tiny_cfg, tmp_path):
    for scenario in ("class_il", "domain_il"):
        with pytest.raises(ConfigError, match="needs the task id at test time"):
            cli.run(tiny_cfg("strategy=progressive", f"scenario={scenario}"), output_dir=tmp_path / scenario)
    assert Progressive.scenarios == ("task_il",)
    net = Progressive().setup(MLP(in_shape=(4,), out_features=4), Scenario("task_il", 2, 2, 4))
    assert isinstance(net, ProgressiveNet)
