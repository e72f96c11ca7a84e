"""The multilayer perceptron of van de Ven et al. (2019): 784-400-400 with ReLU, then the output layer."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


class MLP(nn.Module):
    def __init__(self, *, in_shape: Sequence[int], out_features: int, hidden: Sequence[int] = (400, 400)) -> None:
        super().__init__()
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"model.hidden = {list(hidden)} must be a non-empty list of positive layer widths")
        widths = [math.prod(in_shape), *map(int, hidden)]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], out_features)

    def forward(self, x):
        return self.head(self.features(x))
