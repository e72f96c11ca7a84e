import pytest
import torch

from lepton_research.scenarios import Scenario


def test_out_features():
    assert Scenario("task_il", 5, 2, 10).out_features == 10
    assert Scenario("domain_il", 5, 2, 10).out_features == 2
    assert Scenario("class_il", 5, 2, 10).out_features == 10


def test_unknown_scenario():
    with pytest.raises(ValueError, match="task_il, domain_il, class_il"):
        Scenario("online_il", 5, 2, 10)


def test_targets():
    y = torch.tensor([4, 5, 5, 4])
    assert Scenario("task_il", 5, 2, 10).targets(y, [4, 5]).tolist() == [0, 1, 1, 0]
    assert Scenario("domain_il", 5, 2, 10).targets(y, [4, 5]).tolist() == [0, 1, 1, 0]
    assert Scenario("class_il", 5, 2, 10).targets(y, [4, 5]).tolist() == [4, 5, 5, 4]


def test_task_il_selects_each_samples_head():
    s = Scenario("task_il", 3, 2, 6)
    logits = torch.arange(12.0).view(2, 6)
    out = s.select(logits, torch.tensor([2, 0]), None)
    assert out.tolist() == [[4.0, 5.0], [6.0, 7.0]]


def test_class_il_masks_unseen_classes():
    s = Scenario("class_il", 5, 2, 10)
    active = s.active_mask([0, 1, 2, 3])
    logits = torch.zeros(1, 10)
    logits[0, 7] = 100.0  # an unseen class with the largest logit must not win
    out = s.select(logits, torch.tensor([0]), active)
    assert out.argmax(1).item() in (0, 1, 2, 3)
    assert torch.isinf(out[0, 4:]).all()
    assert s.active_mask([]) is None
    assert Scenario("domain_il", 5, 2, 10).active_mask([0, 1]) is None
