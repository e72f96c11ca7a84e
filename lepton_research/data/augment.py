"""Training-batch augmentation on the compute device: whole batches at once, no per-image Python, no workers.

Applied by the learner to every training batch (after the strategy's ``train_batch``, so replayed samples are
augmented too), never to evaluation data. Random draws come from torch's global generator on the batch's device,
which the task loop seeds from (seed, task index): the same command gives the same augmented batches, and a resumed
run the same as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Identity:
    """augment=none."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


class RandomCropFlip:
    """augment=standard (CIFAR): zero-pad by ``padding``, crop back to the input size at a random offset per image,
    mirror left-right with probability ``flip_p`` (He et al. 2016; Buzzega et al. 2020)."""

    def __init__(self, padding: int = 4, flip_p: float = 0.5) -> None:
        if padding < 0:
            raise ValueError(f"augment.padding = {padding} is not allowed: use an integer >= 0")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"augment.flip_p = {flip_p} is not allowed: use a probability in [0, 1]")
        self.padding, self.flip_p = padding, flip_p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p, dev = self.padding, x.device
        if p:
            padded = F.pad(x, (p, p, p, p))
            top = torch.randint(0, 2 * p + 1, (n,), device=dev)
            left = torch.randint(0, 2 * p + 1, (n,), device=dev)
            rows = (top[:, None] + torch.arange(h, device=dev))[:, None, :, None]
            cols = (left[:, None] + torch.arange(w, device=dev))[:, None, None, :]
            batch = torch.arange(n, device=dev)[:, None, None, None]
            x = padded[batch, torch.arange(c, device=dev)[None, :, None, None], rows, cols]
        if self.flip_p:
            flip = (torch.rand(n, device=dev) < self.flip_p)[:, None, None, None]
            x = torch.where(flip, x.flip(3), x)
        return x


class RandomAffine:
    """augment=mnist_affine (digits): per image a random rotation in [-degrees, degrees], scale in ``scale``,
    shift of up to ``translate`` pixels each way; bilinear, zero fill (one ``affine_grid`` + ``grid_sample``)."""

    def __init__(self, degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1), translate: float = 2.0) -> None:
        lo, hi = (float(s) for s in scale)
        if degrees < 0 or translate < 0 or not 0 < lo <= hi:
            raise ValueError(
                f"augment: degrees = {degrees}, scale = {list(scale)}, translate = {translate} are not allowed: "
                f"use degrees >= 0, translate >= 0 pixels and 0 < scale[0] <= scale[1]"
            )
        self.degrees, self.scale, self.translate = float(degrees), (lo, hi), float(translate)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        dev = x.device

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, device=dev)

        angle = uniform(-self.degrees, self.degrees) * (math.pi / 180)
        inv_scale = 1.0 / uniform(*self.scale)  # the grid maps output to input pixels: zoom in by s = sample at 1/s
        tx = uniform(-self.translate, self.translate) * (2.0 / w)  # pixels -> normalised [-1, 1] coordinates
        ty = uniform(-self.translate, self.translate) * (2.0 / h)
        cos, sin = torch.cos(angle) * inv_scale, torch.sin(angle) * inv_scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
