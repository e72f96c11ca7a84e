"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017), as in van de Ven et al. 2019.

During a task, W accumulates -g * delta_theta at every optimizer step, with g the gradient of the task loss
alone (the SI term's own gradient, 2 c Omega (theta - theta_prev), is subtracted from the total). After the task,
Omega += W / (Delta^2 + xi) with Delta the task's total change. Penalty: c * sum Omega (theta - theta_prev)^2.
Every stored tensor is a clone: a detached *view* of the live weights would make Delta and W always 0.
"""

from __future__ import annotations

import torch

from lepton_research.strategies.base import Strategy, buffer_key


class SI(Strategy):
    def __init__(self, c: float, xi: float = 0.1) -> None:
        super().__init__()
        if c < 0:
            raise ValueError(f"strategy.c = {c} is not allowed: use a value >= 0")
        if xi <= 0:
            raise ValueError(f"strategy.xi = {xi} is not allowed: the damping must be > 0")
        self.c, self.xi = c, xi
        self._task_grads: dict[str, torch.Tensor] = {}
        self._before_step: dict[str, torch.Tensor] = {}
        self._W: dict[str, torch.Tensor] = {}
        self._start: dict[str, torch.Tensor] = {}

    def _params(self, learner):
        return [(n, p) for n, p in learner.model.named_parameters() if p.requires_grad]

    def before_task(self, task, learner) -> None:
        self._W = {n: torch.zeros_like(p) for n, p in self._params(learner)}
        self._start = {n: p.detach().clone() for n, p in self._params(learner)}

    def has_penalty(self) -> bool:
        """True once a task has been consolidated (the omega_/prev_ buffers exist)."""
        return self.c > 0 and bool(self._buffers)

    def penalty(self, learner) -> torch.Tensor:
        total = 0.0
        for n, p in self._params(learner):
            total = (
                total
                + (getattr(self, f"omega_{buffer_key(n)}") * (p - getattr(self, f"prev_{buffer_key(n)}")).pow(2)).sum()
            )
        return self.c * total

    def loss(self, learner, batch, logits, ce):
        return ce + self.penalty(learner) if self.has_penalty() else ce

    def after_backward(self, learner) -> None:
        """Keep the gradient of the task loss alone and the weights before the step."""
        penalised = self.has_penalty()
        for n, p in self._params(learner):
            if p.grad is None:
                continue
            g = p.grad.detach().clone()
            if penalised:
                g -= (
                    2
                    * self.c
                    * getattr(self, f"omega_{buffer_key(n)}")
                    * (p.detach() - getattr(self, f"prev_{buffer_key(n)}"))
                )
            self._task_grads[n] = g
            self._before_step[n] = p.detach().clone()

    def after_step(self, learner) -> None:
        for n, p in self._params(learner):
            if n in self._task_grads:
                self._W[n] -= self._task_grads[n] * (p.detach() - self._before_step[n])
        self._task_grads, self._before_step = {}, {}

    def after_task(self, task, learner) -> None:
        for n, p in self._params(learner):
            delta = p.detach() - self._start[n]
            omega = self._W[n] / (delta.pow(2) + self.xi)
            old = getattr(self, f"omega_{buffer_key(n)}", None)
            self.register_buffer(f"omega_{buffer_key(n)}", omega if old is None else old + omega)
            self.register_buffer(f"prev_{buffer_key(n)}", p.detach().clone())
