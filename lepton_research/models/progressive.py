"""Progressive neural networks (Rusu et al. 2016, arXiv 1606.04671): one column per task, earlier columns frozen.

A column has the shape of the base model, read as a sequence of weight layers (Linear or Conv2d), each followed by
its own operations (activation, pooling, flatten). Column k >= 1 receives, into every weight layer l >= 1, a lateral
input from the layer-(l-1) activations of all earlier columns through Rusu's non-linear adapter:
U_l sigma(V_l (a_l * [h_{l-1}^(0), ..., h_{l-1}^(k-1)])), with a_l a learned scalar, V_l a 1-layer projection
(Linear, or a 1x1 convolution) and sigma the column's non-linearity; U_l has the shape of the column's own layer l.

The output keeps the base model's width (one head per task, task-IL): head block b comes from column b, or from
the newest column for tasks that have no column yet, so the scenario's head selection picks the task's column.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)


def layer_sequence(model: nn.Module) -> list[nn.Module]:
    """The model's modules in execution order: an nn.Sequential, or a ``features`` Sequential then a ``head``."""
    if isinstance(model, nn.Sequential):
        return list(model)
    features, head = getattr(model, "features", None), getattr(model, "head", None)
    if isinstance(features, nn.Sequential) and isinstance(head, nn.Module):
        return [*features, head]
    raise ValueError(
        f"strategy=progressive cannot read {type(model).__name__} as a sequence of layers: give the model a "
        f"`features` nn.Sequential and a `head` (as models/mlp.py does), or make it an nn.Sequential"
    )


def activation_of(modules: list[nn.Module]) -> nn.Module:
    """The column's non-linearity (the first activation module), for the adapters; ReLU if there is none."""
    for m in modules:
        if type(m).__module__ == "torch.nn.modules.activation":
            return copy.deepcopy(m)
    return nn.ReLU()


class Adapter(nn.Module):
    """Lateral connection into weight layer ``target`` from the inputs of that layer in ``n_prev`` earlier columns."""

    def __init__(self, target: nn.Module, n_prev: int, activation: nn.Module, width: int | None, alpha: float):
        super().__init__()
        conv = isinstance(target, nn.Conv2d)
        n_in = target.in_channels if conv else target.in_features
        width = width or n_in  # Rusu: V projects the earlier columns onto the width of one column's layer
        self.alpha = nn.Parameter(torch.full((), alpha))
        self.activation = activation
        if conv:
            self.V = nn.Conv2d(n_prev * n_in, width, 1)
            self.U = nn.Conv2d(
                width,
                target.out_channels,
                target.kernel_size,
                target.stride,
                target.padding,
                target.dilation,
                bias=False,
            )
        else:
            self.V = nn.Linear(n_prev * n_in, width)
            self.U = nn.Linear(width, target.out_features, bias=False)

    def forward(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        return self.U(self.activation(self.V(self.alpha * torch.cat(hidden, 1))))


class Column(nn.Module):
    def __init__(
        self, modules: list[nn.Module], n_prev: int, adapter_width: int | None = None, alpha: float = 0.1
    ) -> None:
        super().__init__()
        weights = [i for i, m in enumerate(modules) if isinstance(m, WEIGHT_LAYERS)]
        if not weights:
            raise ValueError("strategy=progressive: the model has no Linear or Conv2d layer to build columns from")
        self.pre = nn.Sequential(*modules[: weights[0]])
        ends = [*weights[1:], len(modules)]
        self.layers = nn.ModuleList(modules[i] for i in weights)
        self.post = nn.ModuleList(nn.Sequential(*modules[i + 1 : e]) for i, e in zip(weights, ends, strict=True))
        act = activation_of(modules)
        self.laterals = nn.ModuleDict(
            {
                str(lay): Adapter(self.layers[lay], n_prev, copy.deepcopy(act), adapter_width, alpha)
                for lay in range(1, len(self.layers))
                if n_prev > 0
            }
        )

    def forward(self, x: torch.Tensor, earlier: list[list[torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The column's output and the input of each of its weight layers (what later columns' adapters read)."""
        h, inputs = self.pre(x), []
        for lay, (layer, post) in enumerate(zip(self.layers, self.post, strict=True)):
            inputs.append(h)
            z = layer(h)
            if lay > 0 and earlier:
                z = z + self.laterals[str(lay)]([cols[lay] for cols in earlier])
            h = post(z)
        return h, inputs


class ProgressiveNet(nn.Module):
    """Columns of ``model``'s shape; column 0 is ``model`` itself, new ones are fresh re-initialised copies."""

    def __init__(
        self, model: nn.Module, n_heads: int, head_width: int, adapter_width: int | None = None, alpha: float = 0.1
    ):
        super().__init__()
        self._template = [copy.deepcopy(model)]  # a list: not a submodule, neither trained nor checkpointed
        self.n_heads, self.head_width = n_heads, head_width
        self.adapter_width, self.alpha = adapter_width, alpha
        self.columns = nn.ModuleList([Column(layer_sequence(model), 0)])
        self.n_frozen = 0

    def add_column(self) -> None:
        fresh = copy.deepcopy(self._template[0])
        for m in fresh.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        column = Column(layer_sequence(fresh), len(self.columns), self.adapter_width, self.alpha)
        self.columns.append(column.to(next(self.columns[0].parameters()).device))

    def grow_to(self, n: int) -> None:
        while len(self.columns) < n:
            self.add_column()

    def freeze_before(self, k: int) -> None:
        """Columns 0..k-1 get no gradients (requires_grad off) and stay in eval mode."""
        self.n_frozen = k
        for column in self.columns[:k]:
            column.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ProgressiveNet:
        super().train(mode)
        for column in self.columns[: self.n_frozen]:
            column.eval()
        return self

    def column_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        earlier, outputs = [], []
        for column in self.columns:
            out, inputs = column(x, earlier)
            earlier.append(inputs)
            outputs.append(out)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.column_outputs(x)
        if len(outputs) == 1:
            return outputs[0]
        c, last = self.head_width, len(outputs) - 1
        return torch.cat([outputs[min(b, last)][:, b * c : (b + 1) * c] for b in range(self.n_heads)], 1)

    def column_params(self) -> list[int]:
        return [sum(p.numel() for p in column.parameters()) for column in self.columns]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A checkpoint of k columns: grow to k columns first (resume)."""
        n = 1 + max(int(key.split(".")[1]) for key in state_dict if key.startswith("columns."))
        self.grow_to(n)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
