"""The reduced ResNet-18 of Lopez-Paz & Ranzato (2017, GEM), as used by Buzzega et al. (2020, Mammoth).

BasicBlocks [2, 2, 2, 2] with nf = 20 base filters (20/40/80/160), a 3x3 stride-1 stem without max-pooling,
global average pooling, one linear output layer (multi-head through the scenario, as every model here).
BatchNorm: training uses batch statistics; EWC's Fisher runs the model in eval mode (running statistics), which
``torch.func`` handles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ReducedResNet18(nn.Module):
    def __init__(self, *, in_shape: Sequence[int], out_features: int, nf: int = 20) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(
                f"model=resnet18_reduced needs image inputs (C, H, W); the stream's inputs have shape {tuple(in_shape)}"
            )
        if nf < 1:
            raise ValueError(f"model.nf = {nf} must be >= 1")
        self.conv1 = nn.Conv2d(int(in_shape[0]), nf, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(nf)
        blocks, in_planes = [], nf
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = nf * 2**i
            blocks += [BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)]
            in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_planes, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))
