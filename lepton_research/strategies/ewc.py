"""Elastic Weight Consolidation (Kirkpatrick et al. 2017).

After each task the diagonal Fisher information at the task's final weights is computed from per-sample
gradients (torch.func: vmap over grad, in chunks; for models of Linear layers the same per-sample squares are
formed from layer inputs and output gradients without materialising each sample's gradient), with the model in
eval mode and only the output units the scenario uses (van de Ven et al. 2019). The penalty is
lambda/2 * sum over past tasks of F_t (theta - theta*_t)^2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from lepton_research.strategies.base import Strategy, buffer_key

FISHER_LABELS = ("empirical", "true", "argmax")
FISHER_METHODS = ("auto", "factored", "vmap")
FACTORED_BATCH = 1024  # samples per forward/backward in the factored path (memory: activations only)


def _fisher_labels(out: torch.Tensor, y: torch.Tensor, labels: str, generator: torch.Generator | None) -> torch.Tensor:
    """The labels whose NLL gradient is squared: the data's, the model's argmax, or sampled from the model."""
    if labels == "empirical":
        return y
    if labels == "argmax":
        return out.argmax(1)
    probs = out.softmax(1).cpu()
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(out.device)


def _vmap_fisher(model, logits_of, x, task_ids, y, labels, chunk, generator) -> dict[str, torch.Tensor]:
    """Sum over samples of squared per-sample gradients, any model: vmap over grad, ``chunk`` samples at a time."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}

    def nll(p, xi, ti, yi):
        out = logits_of(functional_call(model, p, (xi.unsqueeze(0),)), ti.unsqueeze(0))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_sample_grads = vmap(grad(nll), in_dims=(None, 0, 0, 0))
    for i in range(0, len(x), chunk):
        xs, ts = x[i : i + chunk], task_ids[i : i + chunk]
        ys = y[i : i + chunk]
        if labels != "empirical":
            with torch.no_grad():
                ys = _fisher_labels(logits_of(model(xs), ts), ys, labels, generator)
        for n, g in per_sample_grads(params, xs, ts, ys).items():
            fisher[n] += g.pow(2).sum(0)
    return fisher


def _linear_layers(model: torch.nn.Module) -> dict[str, torch.nn.Linear] | None:
    """The Linear modules, if every trainable parameter is a Linear weight or bias; else None."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    covered = {f"{name}.{kind}" for name in linears for kind in ("weight", "bias")}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return linears if trainable <= covered else None


def _factored_fisher(model, linears, logits_of, x, task_ids, y, labels, generator) -> dict[str, torch.Tensor] | None:
    """The same sum of squared per-sample gradients for a model made of Linear layers, without materialising them.

    For sample i, a Linear layer's weight gradient is the outer product delta_i a_i^T of the gradient at its output
    and its input, so sum_i (delta_i a_i^T)^2 = (delta^2)^T (a^2): one matmul per layer. The deltas come from one
    backward pass of the *summed* NLL, which is exact because in eval mode sample i's output depends on x_i alone.
    Returns None when a layer sees non-2-D inputs or runs twice per forward (the identity then does not hold).
    """
    params = dict(model.named_parameters())
    fisher = {n: torch.zeros_like(p) for n, p in params.items() if p.requires_grad}
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def capture(name):
        def hook(module, inputs, output):
            seen.setdefault(name, []).append((inputs[0].detach(), output))

        return hook

    handles = [m.register_forward_hook(capture(name)) for name, m in linears.items()]
    try:
        for i in range(0, len(x), FACTORED_BATCH):
            xs, ts = x[i : i + FACTORED_BATCH], task_ids[i : i + FACTORED_BATCH]
            seen.clear()
            with torch.enable_grad():
                out = logits_of(model(xs), ts)
                if any(len(v) != 1 or v[0][0].dim() != 2 for v in seen.values()):
                    return None
                ys = _fisher_labels(out.detach(), y[i : i + FACTORED_BATCH], labels, generator)
                names = list(seen)
                deltas = torch.autograd.grad(
                    F.cross_entropy(out, ys, reduction="sum"), [seen[n][0][1] for n in names], allow_unused=True
                )
            for name, delta in zip(names, deltas, strict=True):
                if delta is None:  # a layer the scenario's logits do not use (e.g. another task's head)
                    continue
                d2, a2 = delta.pow(2), seen[name][0][0].pow(2)
                if f"{name}.weight" in fisher:
                    fisher[f"{name}.weight"] += d2.T @ a2
                if f"{name}.bias" in fisher:
                    fisher[f"{name}.bias"] += d2.sum(0)
    finally:
        for h in handles:
            h.remove()
    return fisher


def per_sample_fisher(
    model: torch.nn.Module,
    logits_of,
    x: torch.Tensor,
    task_ids: torch.Tensor,
    y: torch.Tensor,
    labels: str,
    chunk: int = 8,
    generator: torch.Generator | None = None,
    method: str = "auto",
) -> dict[str, torch.Tensor]:
    """Mean over samples of the squared per-sample gradient of the NLL: the diagonal (empirical/true) Fisher.

    ``logits_of(model_output, task_ids)`` maps the model's outputs to the scenario's logits. ``labels``:
    ``empirical`` uses the data's labels, ``true`` samples them from the model's predictive distribution,
    ``argmax`` takes the predicted class (van de Ven et al.'s code). ``method``: ``vmap`` (torch.func per-sample
    gradients, any model, ``chunk`` samples at a time), ``factored`` (exact per-sample squares from layer inputs and
    output gradients, models of Linear layers only), ``auto`` (factored where it applies, else vmap).
    """
    if labels not in FISHER_LABELS:
        raise ValueError(f"strategy.fisher = {labels!r} is not allowed: one of {', '.join(FISHER_LABELS)}")
    if method not in FISHER_METHODS:
        raise ValueError(f"strategy.fisher_method = {method!r} is not allowed: one of {', '.join(FISHER_METHODS)}")
    was_training = model.training
    model.eval()
    try:
        fisher = None
        if method != "vmap":
            linears = _linear_layers(model)
            if linears is not None:
                fisher = _factored_fisher(model, linears, logits_of, x, task_ids, y, labels, generator)
            if fisher is None and method == "factored":
                raise ValueError(
                    "strategy.fisher_method = 'factored' needs a model whose trainable parameters are all in "
                    "Linear layers applied once to 2-D inputs; use fisher_method=vmap (or auto) for this model"
                )
        if fisher is None:
            fisher = _vmap_fisher(model, logits_of, x, task_ids, y, labels, chunk, generator)
    finally:
        model.train(was_training)
    return {n: f / len(x) for n, f in fisher.items()}


class EWC(Strategy):
    """Offline EWC: one Fisher and one anchor per past task (buffers ``fisher_<k>_<param>``, ``anchor_<k>_<param>``)."""

    def __init__(
        self,
        lambda_: float,
        fisher: str = "argmax",
        fisher_samples: int | None = None,
        fisher_chunk: int = 8,
        fisher_method: str = "auto",
    ) -> None:
        super().__init__()
        if lambda_ < 0:
            raise ValueError(f"strategy.lambda_ = {lambda_} is not allowed: use a value >= 0")
        if fisher not in FISHER_LABELS:
            raise ValueError(f"strategy.fisher = {fisher!r} is not allowed: one of {', '.join(FISHER_LABELS)}")
        if fisher_samples is not None and fisher_samples < 1:
            raise ValueError(f"strategy.fisher_samples = {fisher_samples} is not allowed: use >= 1, or null for all")
        if fisher_method not in FISHER_METHODS:
            raise ValueError(
                f"strategy.fisher_method = {fisher_method!r} is not allowed: one of {', '.join(FISHER_METHODS)}"
            )
        self.fisher_method = fisher_method
        self.lambda_, self.fisher, self.fisher_samples, self.fisher_chunk = (
            lambda_,
            fisher,
            fisher_samples,
            fisher_chunk,
        )
        self._terms: tuple[list, float] | None = None  # the combined quadratic (see terms), rebuilt after each task
        self._pending: list | None = None  # this step's (param, A (theta - m)): the gradient added after backward

    def estimate_fisher(self, task, learner) -> dict[str, torch.Tensor]:
        data = task.train
        x, y, t = data.x, data.y, data.task
        if self.fisher_samples is not None and self.fisher_samples < len(data):
            idx = torch.randperm(len(data))[: self.fisher_samples].to(x.device)
            x, y, t = x[idx], y[idx], t[idx]
        active = learner.active

        def logits_of(out, task_ids):
            return learner.scenario.select(out, task_ids, active)

        return per_sample_fisher(
            learner.model, logits_of, x, t, y, self.fisher, self.fisher_chunk, method=self.fisher_method
        )

    def n_consolidated(self) -> int:
        return len({name.split("_")[1] for name, _ in self.named_buffers() if name.startswith("fisher_")})

    def consolidate(self, k: int, fisher: dict[str, torch.Tensor], learner) -> None:
        """Store (or overwrite) Fisher and anchor set k at the current weights."""
        for n, p in learner.model.named_parameters():
            if n in fisher:
                self.register_buffer(f"fisher_{k}_{buffer_key(n)}", fisher[n])
                self.register_buffer(f"anchor_{k}_{buffer_key(n)}", p.detach().clone())
        self._terms = None

    def after_task(self, task, learner) -> None:
        self.consolidate(self.n_consolidated(), self.estimate_fisher(task, learner), learner)

    def load_state(self, state) -> None:
        super().load_state(state)
        self._terms = None

    def scale(self) -> float:
        """Factor on the whole penalty (online EWC: gamma)."""
        return 1.0

    def terms(self, learner) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], float]:
        """The K per-task quadratics as one: sum_k F_k (theta - theta*_k)^2 = A (theta - m)^2 + c with A = sum_k F_k,
        m = sum_k F_k theta*_k / A (0 where A = 0) and c = sum_k F_k theta*_k^2 - A m^2 (a constant, in float64).
        Exact algebra; the per-step cost no longer grows with the number of tasks. Returns ([(param, A, m)], c)."""
        if self._terms is None:
            buffers, params = dict(self.named_buffers()), dict(learner.model.named_parameters())
            combined, const = [], 0.0
            for n, p in params.items():
                keys = [k for k in range(self.n_consolidated()) if f"fisher_{k}_{buffer_key(n)}" in buffers]
                if not keys:
                    continue
                F64 = [buffers[f"fisher_{k}_{buffer_key(n)}"].double() for k in keys]
                a64 = [buffers[f"anchor_{k}_{buffer_key(n)}"].double() for k in keys]
                A = sum(F64)
                B = sum(f * a for f, a in zip(F64, a64, strict=True))
                m = torch.where(A > 0, B / A.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(A))
                const += float((sum(f * a * a for f, a in zip(F64, a64, strict=True)) - A * m * m).sum())
                combined.append((p, A.to(p.dtype), m.to(p.dtype)))
            self._terms = (combined, const)
        return self._terms

    def penalty(self, learner) -> torch.Tensor:
        """lambda/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2 (differentiable)."""
        combined, const = self.terms(learner)
        total = sum((A * (p - m).pow(2)).sum() for p, A, m in combined) + const
        return 0.5 * self.lambda_ * self.scale() * total

    def loss(self, learner, batch, logits, ce):
        """CE plus the penalty's value; its gradient, lambda * scale * A (theta - m), is added in closed form after
        backward (``after_backward``): the same gradient autograd would give, without its intermediate tensors."""
        combined, const = self.terms(learner)
        if not combined or self.lambda_ == 0:
            self._pending = None
            return ce
        with torch.no_grad():
            pending, value = [], const
            for p, A, m in combined:
                diff = p - m
                weighted = A * diff  # A (theta - m): half the penalty's gradient per unit of lambda * scale
                pending.append((p, weighted))
                value = value + (weighted * diff).sum()
        self._pending = pending
        return ce + 0.5 * self.lambda_ * self.scale() * value

    def after_backward(self, learner) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        for p, weighted in pending:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.add_(weighted, alpha=self.lambda_ * self.scale())
