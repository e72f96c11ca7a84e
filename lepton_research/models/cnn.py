"""A small convolutional net for 28x28 and 32x32 images: two conv-ReLU-maxpool stages, one hidden layer, head.

Output is one linear layer of ``out_features`` units; the scenario makes it multi-head (task-IL: T * c units,
each task's c selected by ``Scenario.select``), as for the MLP. No in-place ops and no batch statistics, so
``torch.func`` (EWC's per-sample Fisher) works on it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CNN(nn.Module):
    def __init__(
        self, *, in_shape: Sequence[int], out_features: int, channels: Sequence[int] = (32, 64), hidden: int = 256
    ) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(
                f"model=cnn needs image inputs (C, H, W); this stream's inputs have shape {tuple(in_shape)}"
            )
        if not channels or any(int(c) < 1 for c in channels) or hidden < 1:
            raise ValueError(f"model.channels = {list(channels)} and model.hidden = {hidden} must be positive")
        c, h, w = (int(v) for v in in_shape)
        layers: list[nn.Module] = []
        for width in map(int, channels):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = width, h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"model.channels = {list(channels)}: too many 2x poolings for inputs of shape {in_shape}")
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
