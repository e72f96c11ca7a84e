"""The two plots of every run: the accuracy-matrix heatmap and accuracy/forgetting curves over tasks trained."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lepton_research import metrics  # noqa: E402


def accuracy_matrix_png(R: np.ndarray, path: Path, title: str) -> None:
    R = metrics.as_matrix(R)
    T = R.shape[1]
    fig, ax = plt.subplots(figsize=(1.1 * T + 2.5, 0.8 * (T + 1) + 1.5))
    im = ax.imshow(R, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for k in range(T + 1):
        for j in range(T):
            ax.text(j, k, f"{R[k, j]:.2f}", ha="center", va="center", color="white" if R[k, j] < 0.6 else "black")
    ax.set_xticks(range(T), [f"task {j}" for j in range(T)])
    ax.set_yticks(range(T + 1), ["untrained"] + [f"after {k - 1}" for k in range(1, T + 1)])
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("trained through")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def forgetting_curves_png(R: np.ndarray, path: Path, title: str) -> None:
    """Left: accuracy on each task against tasks trained, with the average over seen tasks. Right: forgetting."""
    R = metrics.as_matrix(R)
    T = R.shape[1]
    steps = np.arange(T + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for j in range(T):
        left.plot(steps[j + 1 :], R[j + 1 :, j], marker="o", label=f"task {j}")
    seen = [metrics.average_seen_accuracy(R, k) for k in range(1, T + 1)]
    left.plot(steps[1:], seen, color="black", lw=2.5, ls="--", label="avg seen")
    left.set(xlabel="tasks trained", ylabel="test accuracy", ylim=(0, 1.02), xticks=steps, title="accuracy")
    left.legend(fontsize=8)
    if T >= 2:
        ks = range(2, T + 1)
        right.plot(list(ks), [metrics.average_forgetting(R, k) for k in ks], marker="o", color="crimson")
    right.set(xlabel="tasks trained", ylabel="average forgetting", xticks=steps, title="forgetting (Chaudhry 2018)")
    right.set_ylim(min(-0.05, right.get_ylim()[0]), max(1.05, right.get_ylim()[1]))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
