"""Continual-learning metrics as pure functions of the accuracy matrix R.

R has T+1 rows and T columns: R[0][j] is the untrained model's accuracy on task j, R[k][j] the accuracy on
task j after training tasks 0..k-1. Definitions follow Chaudhry et al. 2018 (forgetting) and Lopez-Paz &
Ranzato 2017 (BWT, FWT, with their T-1 denominators; FWT is measured against the untrained row 0).
"""

from __future__ import annotations

import numpy as np


def as_matrix(R) -> np.ndarray:
    """R as a float array of shape (T+1, T), checked."""
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] + 1:
        raise ValueError(f"accuracy matrix must have T+1 rows and T columns, got shape {R.shape}")
    return R


def average_accuracy(R, k: int | None = None) -> float:
    """Mean accuracy over all tasks at row k (default: the last row)."""
    R = as_matrix(R)
    k = R.shape[1] if k is None else k
    return float(R[k].mean())


def average_seen_accuracy(R, k: int) -> float:
    """Mean accuracy at row k over the tasks trained so far (0..k-1); needs k >= 1."""
    R = as_matrix(R)
    if k < 1:
        raise ValueError("average_seen_accuracy needs k >= 1 (no task is seen at row 0)")
    return float(R[k, :k].mean())


def forgetting_per_task(R, k: int | None = None) -> np.ndarray:
    """Chaudhry et al. 2018 forgetting at row k for tasks 0..k-2.

    f_j = max over rows l in [j+1, k-1] of R[l][j], minus R[k][j]: the best accuracy task j had after it was
    trained and before the latest task, minus its accuracy now. Empty for k < 2.
    """
    R = as_matrix(R)
    k = R.shape[1] if k is None else k
    return np.array([R[j + 1 : k, j].max() - R[k, j] for j in range(k - 1)])


def average_forgetting(R, k: int | None = None) -> float:
    """Mean of forgetting_per_task at row k; needs k >= 2."""
    f = forgetting_per_task(R, k)
    if f.size == 0:
        raise ValueError("forgetting needs at least two trained tasks (k >= 2)")
    return float(f.mean())


def backward_transfer(R) -> float:
    """BWT = 1/(T-1) * sum_{j<T-1} (R[T][j] - R[j+1][j]): final accuracy minus accuracy just after training j."""
    R = as_matrix(R)
    T = R.shape[1]
    if T < 2:
        raise ValueError("BWT needs at least two tasks")
    return float(np.mean([R[T, j] - R[j + 1, j] for j in range(T - 1)]))


def forward_transfer(R) -> float:
    """FWT = 1/(T-1) * sum_{j>=1} (R[j][j] - R[0][j]): accuracy on task j before training it, minus untrained."""
    R = as_matrix(R)
    T = R.shape[1]
    if T < 2:
        raise ValueError("FWT needs at least two tasks")
    return float(np.mean([R[j, j] - R[0, j] for j in range(1, T)]))


def summary(R) -> dict[str, float]:
    """The final/* metrics of the MLflow contract for a complete matrix."""
    R = as_matrix(R)
    out = {"final/avg_acc": average_accuracy(R)}
    if R.shape[1] >= 2:
        out["final/forgetting"] = average_forgetting(R)
        out["final/bwt"] = backward_transfer(R)
        out["final/fwt"] = forward_transfer(R)
    return out


def row_metrics(R, k: int) -> dict[str, float]:
    """The step-k metrics of the MLflow contract, from rows 0..k of R (later rows are ignored)."""
    R = as_matrix(R)
    out = {f"acc/task_{j}": float(R[k, j]) for j in range(R.shape[1])}
    if k >= 1:
        out["acc/avg_seen"] = average_seen_accuracy(R, k)
        out["acc/avg_all"] = average_accuracy(R, k)
    if k >= 2:
        f = forgetting_per_task(R, k)
        out.update({f"forgetting/task_{j}": float(v) for j, v in enumerate(f)})
        out["forgetting/avg"] = float(f.mean())
    return out


def mean_sem(values, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (sample std with ddof=1, over sqrt(n)) along ``axis``; s.e.m. is 0
    for a single value (nothing to spread), not NaN, so a one-seed band is drawn as a line."""
    v = np.asarray(values, dtype=float)
    n = v.shape[axis]
    sem = v.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(v.mean(axis=axis))
    return v.mean(axis=axis), sem
