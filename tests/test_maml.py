"""La-MAML: the outer update and the inner loop against hand values, the second-order meta-gradient against finite
differences, C-MAML's fixed rates. A real run (manual optimisation, learned rates, memory, train/loss steps):
tests/test_strategies.py::test_every_strategy_runs; resume: test_resume_restores_strategy_state."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lepton_research.scenarios import Scenario
from lepton_research.strategies.maml import LaMAML, LookAheadSGD


def test_look_ahead_sgd_updates_the_rates_first_then_the_weights_with_the_clipped_new_rates():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    a = nn.Parameter(torch.tensor([0.5, -0.1]))
    w.grad, a.grad = torch.tensor([1.0, 1.0]), torch.tensor([0.2, 0.2])
    LookAheadSGD([w], [a], alpha_lr=0.5, learn_lr=True).step()
    # alpha = (0.5, -0.1) - 0.5 * 0.2 = (0.4, -0.2); w = (1, 2) - max(0, alpha) * 1 = (0.6, 2.0)
    torch.testing.assert_close(a.data, torch.tensor([0.4, -0.2]))
    torch.testing.assert_close(w.data, torch.tensor([0.6, 2.0]))
    w2, a2 = nn.Parameter(torch.tensor([1.0])), nn.Parameter(torch.tensor([0.5]))
    w2.grad, a2.grad = torch.tensor([1.0]), torch.tensor([0.2])
    LookAheadSGD([w2], [a2], alpha_lr=0.5, learn_lr=False).step()  # C-MAML: fixed rates
    assert a2.item() == 0.5 and w2.item() == 0.5


def _learner(model, scenario=None):
    return SimpleNamespace(model=model, scenario=scenario or Scenario("class_il", 1, 2, 2), active=None)


def test_inner_step_by_hand():
    # logits W x = (0, 0) at W = 0, x = 1, y = 0: dCE/dW = p - onehot = (-0.5, 0.5); W' = -0.15 * that
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)
    maml = LaMAML(alpha_init=0.15)
    maml.setup(model, None)
    fast = maml.fast_weights(_learner(model), torch.ones(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1))
    torch.testing.assert_close(fast["weight"], torch.tensor([[0.075], [-0.075]]))


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_against_finite_differences(first_order):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    maml = LaMAML(alpha_init=0.3, first_order=first_order)
    maml.setup(model, None)
    learner = _learner(model)
    x, y, t = torch.randn(3, 3, dtype=torch.float64), torch.tensor([0, 1, 1]), torch.zeros(3, dtype=torch.long)
    xm, ym = torch.randn(5, 3, dtype=torch.float64), torch.tensor([1, 0, 1, 0, 0])

    def meta(params):
        fast = maml.fast_weights(SimpleNamespace(**{**vars(learner), "model": model}), x, y, t)
        return F.cross_entropy(functional_call(model, fast, (xm,)), ym)

    loss = meta(None)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    w = model[0].weight
    numeric = torch.zeros_like(w)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            w.data[i, j] += 1e-6
            up = meta(None).item()
            w.data[i, j] -= 2e-6
            down = meta(None).item()
            w.data[i, j] += 1e-6
            numeric[i, j] = (up - down) / 2e-6
    if first_order:  # the first-order gradient is the plain gradient at the fast weights: not the true one
        assert not torch.allclose(grads[0], numeric, atol=1e-6)
    else:
        torch.testing.assert_close(grads[0], numeric, atol=1e-7, rtol=1e-5)
    assert torch.autograd.grad(meta(None), [maml.alphas[0]])[0].abs().sum() > 0  # the rates get a meta-gradient


def test_c_maml_rates_are_not_learned():
    maml = LaMAML(learn_lr=False)
    maml.setup(nn.Linear(2, 2), None)
    assert not any(a.requires_grad for a in maml.alphas)
