"""Metrics on a hand-worked accuracy matrix (T = 3 tasks, 4 rows; row 0 untrained)."""

import math

import numpy as np
import pytest

from lepton_research import metrics

R = np.array(
    [
        [0.10, 0.20, 0.30],  # untrained
        [0.90, 0.30, 0.25],  # after task 0
        [0.60, 0.80, 0.40],  # after task 1
        [0.50, 0.70, 0.95],  # after task 2
    ]
)


def test_average_accuracy():
    assert metrics.average_accuracy(R) == pytest.approx((0.50 + 0.70 + 0.95) / 3)
    assert metrics.average_accuracy(R, 1) == pytest.approx((0.90 + 0.30 + 0.25) / 3)


def test_average_seen_accuracy():
    assert metrics.average_seen_accuracy(R, 1) == pytest.approx(0.90)
    assert metrics.average_seen_accuracy(R, 2) == pytest.approx((0.60 + 0.80) / 2)
    with pytest.raises(ValueError):
        metrics.average_seen_accuracy(R, 0)


def test_forgetting_chaudhry():
    # after task 1: task 0 best earlier 0.90 (row 1), now 0.60 -> 0.30
    np.testing.assert_allclose(metrics.forgetting_per_task(R, 2), [0.30])
    # after task 2: task 0 max(0.90, 0.60) - 0.50 = 0.40; task 1 max(0.80) - 0.70 = 0.10
    np.testing.assert_allclose(metrics.forgetting_per_task(R), [0.40, 0.10])
    assert metrics.average_forgetting(R) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        metrics.average_forgetting(R, 1)


def test_forgetting_ignores_untrained_row():
    # row 0 (untrained) is higher than everything later on task 0: it must not count as "best earlier"
    R2 = R.copy()
    R2[0, 0] = 0.99
    np.testing.assert_allclose(metrics.forgetting_per_task(R2), [0.40, 0.10])


def test_bwt_lopez_paz():
    # ((0.50 - 0.90) + (0.70 - 0.80)) / 2 = -0.25
    assert metrics.backward_transfer(R) == pytest.approx(-0.25)


def test_fwt_against_untrained_row():
    # ((R[1][1] - R[0][1]) + (R[2][2] - R[0][2])) / 2 = ((0.30 - 0.20) + (0.40 - 0.30)) / 2 = 0.10
    assert metrics.forward_transfer(R) == pytest.approx(0.10)


def test_summary_and_row_metrics():
    s = metrics.summary(R)
    assert s == pytest.approx(
        {"final/avg_acc": 0.716666666, "final/forgetting": 0.25, "final/bwt": -0.25, "final/fwt": 0.10}
    )
    row = metrics.row_metrics(R, 2)
    assert row["acc/task_2"] == pytest.approx(0.40)
    assert row["acc/avg_seen"] == pytest.approx(0.70)
    assert row["acc/avg_all"] == pytest.approx(0.60)
    assert row["forgetting/task_0"] == pytest.approx(0.30)
    assert "forgetting/task_1" not in row
    assert set(metrics.row_metrics(R, 0)) == {"acc/task_0", "acc/task_1", "acc/task_2"}


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match="T\\+1 rows"):
        metrics.summary(np.zeros((3, 3)))


def test_mean_sem_by_hand():
    mean, sem = metrics.mean_sem([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and sem == pytest.approx(1 / math.sqrt(3))  # std (ddof 1) = 1, n = 3
    mean, sem = metrics.mean_sem([[0.2, 0.4], [0.4, 0.8]])  # per column (step): seeds in rows
    np.testing.assert_allclose(mean, [0.3, 0.6])
    np.testing.assert_allclose(sem, [0.1, 0.2])  # std = |a - b| / sqrt(2), over sqrt(2)
    assert metrics.mean_sem([0.7])[1] == 0.0  # one seed: no band, not NaN
