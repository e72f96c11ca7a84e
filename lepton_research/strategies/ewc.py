"""Elastic Weight Consolidation (Kirkpatrick et al. 2017).

After each task the diagonal Fisher information at the task's final weights is computed from per-sample
gradients (torch.func: vmap over grad, in chunks), with the model in eval mode and only the output units the
scenario uses (van de Ven et al. 2019). The penalty is lambda/2 * sum over past tasks of F_t (theta - theta*_t)^2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from lepton_research.strategies.base import Strategy, buffer_key

FISHER_LABELS = ("empirical", "true", "argmax")


def per_sample_fisher(
    model: torch.nn.Module,
    logits_of,
    x: torch.Tensor,
    task_ids: torch.Tensor,
    y: torch.Tensor,
    labels: str,
    chunk: int = 8,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Mean over samples of the squared per-sample gradient of the NLL: the diagonal (empirical/true) Fisher.

    ``logits_of(model_output, task_ids)`` maps the model's outputs to the scenario's logits. ``labels``:
    ``empirical`` uses the data's labels, ``true`` samples them from the model's predictive distribution,
    ``argmax`` takes the predicted class (van de Ven et al.'s code).
    """
    if labels not in FISHER_LABELS:
        raise ValueError(f"strategy.fisher = {labels!r} is not allowed: one of {', '.join(FISHER_LABELS)}")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}

    def nll(p, xi, ti, yi):
        out = logits_of(functional_call(model, p, (xi.unsqueeze(0),)), ti.unsqueeze(0))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_sample_grads = vmap(grad(nll), in_dims=(None, 0, 0, 0))
    was_training = model.training
    model.eval()
    for i in range(0, len(x), chunk):
        xs, ts = x[i : i + chunk], task_ids[i : i + chunk]
        if labels == "empirical":
            ys = y[i : i + chunk]
        else:
            with torch.no_grad():
                out = logits_of(model(xs), ts)
            if labels == "argmax":
                ys = out.argmax(1)
            else:
                probs = out.softmax(1).cpu()
                ys = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(xs.device)
        for n, g in per_sample_grads(params, xs, ts, ys).items():
            fisher[n] += g.pow(2).sum(0)
    model.train(was_training)
    return {n: f / len(x) for n, f in fisher.items()}


class EWC(Strategy):
    """Offline EWC: one Fisher and one anchor per past task (buffers ``fisher_<k>_<param>``, ``anchor_<k>_<param>``)."""

    def __init__(
        self, lambda_: float, fisher: str = "argmax", fisher_samples: int | None = None, fisher_chunk: int = 8
    ) -> None:
        super().__init__()
        if lambda_ < 0:
            raise ValueError(f"strategy.lambda_ = {lambda_} is not allowed: use a value >= 0")
        if fisher not in FISHER_LABELS:
            raise ValueError(f"strategy.fisher = {fisher!r} is not allowed: one of {', '.join(FISHER_LABELS)}")
        if fisher_samples is not None and fisher_samples < 1:
            raise ValueError(f"strategy.fisher_samples = {fisher_samples} is not allowed: use >= 1, or null for all")
        self.lambda_, self.fisher, self.fisher_samples, self.fisher_chunk = (
            lambda_,
            fisher,
            fisher_samples,
            fisher_chunk,
        )
        self._terms: list[tuple[torch.Tensor, torch.Tensor, str]] | None = None  # (fisher, anchor, param name)

    def estimate_fisher(self, task, learner) -> dict[str, torch.Tensor]:
        data = task.train
        x, y, t = data.x, data.y, data.task
        if self.fisher_samples is not None and self.fisher_samples < len(data):
            idx = torch.randperm(len(data))[: self.fisher_samples].to(x.device)
            x, y, t = x[idx], y[idx], t[idx]
        active = learner.active

        def logits_of(out, task_ids):
            return learner.scenario.select(out, task_ids, active)

        return per_sample_fisher(learner.model, logits_of, x, t, y, self.fisher, self.fisher_chunk)

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

    def terms(self, learner) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
        if self._terms is None:
            buffers = dict(self.named_buffers())
            self._terms = [
                (buffers[f"fisher_{k}_{buffer_key(n)}"], buffers[f"anchor_{k}_{buffer_key(n)}"], n)
                for k in range(self.n_consolidated())
                for n, _ in learner.model.named_parameters()
                if f"fisher_{k}_{buffer_key(n)}" in buffers
            ]
        return self._terms

    def penalty(self, learner) -> torch.Tensor:
        """lambda/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2."""
        params = dict(learner.model.named_parameters())
        total = sum((f * (params[n] - anchor).pow(2)).sum() for f, anchor, n in self.terms(learner))
        return 0.5 * self.lambda_ * total

    def loss(self, learner, batch, logits, ce):
        if not self.terms(learner):
            return ce
        return ce + self.penalty(learner)
