"""The CNN and the reduced ResNet-18: shapes from the stream, multi-head outputs, EWC's vmap Fisher on them."""

import pytest
import torch
import torch.nn.functional as F

from lepton_research.models.cnn import CNN
from lepton_research.models.resnet import ReducedResNet18
from lepton_research.scenarios import Scenario
from lepton_research.strategies.ewc import per_sample_fisher


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("cls", [CNN, ReducedResNet18])
def test_models_take_the_streams_shape(cls, shape):
    model = cls(in_shape=shape, out_features=10)
    assert model(torch.zeros(3, *shape)).shape == (3, 10)


def test_reduced_resnet18_has_the_papers_size():
    """nf = 20: about 1.09 M parameters for 10 outputs (Mammoth's resnet18(nclasses=10, nf=20))."""
    n = sum(p.numel() for p in ReducedResNet18(in_shape=(3, 32, 32), out_features=10).parameters())
    assert 1.05e6 < n < 1.15e6


def test_models_refuse_flat_inputs():
    with pytest.raises(ValueError, match="model=cnn needs image inputs"):
        CNN(in_shape=(784,), out_features=10)
    with pytest.raises(ValueError, match="too many 2x poolings"):
        CNN(in_shape=(1, 28, 28), out_features=10, channels=[8, 8, 8, 8, 8, 8])


@pytest.mark.parametrize("cls", [CNN, ReducedResNet18])
def test_ewc_vmap_fisher_on_conv_nets_equals_a_per_sample_loop(cls):
    """EWC's torch.func Fisher works on both (eval mode: BatchNorm uses running statistics) and is exact."""
    torch.manual_seed(0)
    model = cls(in_shape=(3, 32, 32), out_features=4) if cls is CNN else cls(in_shape=(3, 32, 32), out_features=4, nf=4)
    x, y, t = torch.rand(6, 3, 32, 32), torch.randint(0, 2, (6,)), torch.tensor([0, 1, 0, 1, 1, 0])
    scenario = Scenario("task_il", 2, 2, 4)  # multi-head: each sample's own 2 units

    def logits_of(out, task_ids):
        return scenario.select(out, task_ids, None)

    fast = per_sample_fisher(model, logits_of, x, t, y, "empirical", chunk=4)
    model.eval()
    slow = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(logits_of(model(x[i : i + 1]), t[i : i + 1]), y[i : i + 1]).backward()
        for n, p in model.named_parameters():
            slow[n] += p.grad.pow(2) / len(x)
    for n in slow:
        torch.testing.assert_close(fast[n], slow[n], atol=1e-7, rtol=1e-4)
    assert sum(f.sum() for f in fast.values()) > 0
