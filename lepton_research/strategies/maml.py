"""La-MAML (Gupta, Yadav & Paull 2020, arXiv 2007.13904, Algorithm 1): look-ahead meta-learning for continual
learning, with C-MAML as its ``learn_lr: false`` case.

For each incoming batch b, ``glances`` times: draw a memory sample m (reservoir memory, before b enters it); take
inner SGD steps on b, ``inner_batch_size`` examples at a time (their code: 1), with per-parameter learning rates
alpha, theta_{n+1} = theta_n - alpha * clamp(grad); evaluate the meta-loss on b + m at the fast weights theta_k; its
gradient updates alpha (SGD, ``alpha_lr``) and then the weights with the clipped new rates,
theta <- theta - max(0, alpha) * grad (both gradients clipped in norm). Second-order through the inner loop unless
``first_order``. After the glances b is offered to the memory. The learner's configured optimizer is not used.

Differences from their code, on purpose: the meta-loss is taken at the final fast weights only (Algorithm 1; their
code averages it over every intermediate step), and a batch enters the memory once (their code pushes it at every
glance). torch.func.functional_call runs the model at the fast weights: no meta-learning dependency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lepton_research.strategies.base import Strategy
from lepton_research.strategies.replay import reservoir


class LookAheadSGD(torch.optim.Optimizer):
    """La-MAML's outer update: alpha <- alpha - alpha_lr * d alpha (if learned), then w <- w - relu(alpha) * dw."""

    def __init__(self, weights: list[nn.Parameter], alphas: list[nn.Parameter], alpha_lr: float, learn_lr: bool):
        super().__init__([{"params": weights, "lr": 1.0}, {"params": alphas, "lr": alpha_lr}], {})
        self.learn_lr = learn_lr

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        weights, alphas = self.param_groups[0]["params"], self.param_groups[1]
        if self.learn_lr:
            for a in alphas["params"]:
                if a.grad is not None:
                    a.sub_(alphas["lr"] * a.grad)
        for w, a in zip(weights, alphas["params"], strict=True):
            if w.grad is not None:
                w.sub_(a.clamp(min=0) * w.grad)
        return loss


class LaMAML(Strategy):
    def __init__(
        self,
        glances: int = 5,
        inner_batch_size: int = 1,
        alpha_init: float = 0.15,
        alpha_lr: float = 0.3,
        learn_lr: bool = True,
        first_order: bool = False,
        memory_size: int = 200,
        replay_batch_size: int = 10,
        grad_clip_norm: float = 2.0,
    ) -> None:
        super().__init__()
        for key, value in (
            ("glances", glances),
            ("inner_batch_size", inner_batch_size),
            ("memory_size", memory_size),
            ("replay_batch_size", replay_batch_size),
        ):
            if value < 1:
                raise ValueError(f"strategy.{key} = {value} is not allowed: use an integer >= 1")
        for key, value in (("alpha_init", alpha_init), ("alpha_lr", alpha_lr), ("grad_clip_norm", grad_clip_norm)):
            if value <= 0:
                raise ValueError(f"strategy.{key} = {value} is not allowed: use a value > 0")
        self.glances, self.inner_batch_size = glances, inner_batch_size
        self.alpha_init, self.alpha_lr, self.learn_lr = alpha_init, alpha_lr, learn_lr
        self.first_order, self.memory_size = first_order, memory_size
        self.replay_batch_size, self.grad_clip_norm = replay_batch_size, grad_clip_norm
        self.alphas = nn.ParameterList()
        self._names: list[str] = []
        self.register_buffer("mem_x", torch.empty(0))
        self.register_buffer("mem_y", torch.empty(0, dtype=torch.long))
        self.register_buffer("mem_task", torch.empty(0, dtype=torch.long))
        self.register_buffer("n_seen", torch.zeros((), dtype=torch.long))

    def setup(self, model, scenario):
        """One learning rate per weight, alpha_init everywhere (La-MAML's alpha_lr list)."""
        self._names = [n for n, _ in model.named_parameters()]
        self.alphas = nn.ParameterList(
            nn.Parameter(torch.full_like(p.detach(), self.alpha_init), requires_grad=self.learn_lr)
            for p in model.parameters()
        )
        return model

    def make_optimizer(self, learner) -> torch.optim.Optimizer:
        return LookAheadSGD(list(learner.model.parameters()), list(self.alphas), self.alpha_lr, self.learn_lr)

    def memory_sample(self) -> tuple[torch.Tensor, ...] | None:
        n = self.mem_x.shape[0]
        if n == 0:
            return None
        idx = torch.randperm(n, device=self.mem_x.device)[: self.replay_batch_size]
        return self.mem_x[idx], self.mem_y[idx], self.mem_task[idx]

    def fast_weights(self, learner, x, y, t) -> dict[str, torch.Tensor]:
        """The inner loop: SGD with the learned rates over ``x`` in slices of ``inner_batch_size``."""
        fast = dict(learner.model.named_parameters())
        alphas = dict(zip(self._names, self.alphas, strict=True))
        for i in range(0, len(x), self.inner_batch_size):
            s = slice(i, i + self.inner_batch_size)
            logits = learner.scenario.select(functional_call(learner.model, fast, (x[s],)), t[s], learner.active)
            grads = torch.autograd.grad(
                F.cross_entropy(logits, y[s]), list(fast.values()), create_graph=not self.first_order
            )
            fast = {
                n: w - alphas[n] * g.clamp(-self.grad_clip_norm, self.grad_clip_norm)
                for (n, w), g in zip(fast.items(), grads, strict=True)
            }
        return fast

    def meta_loss(self, learner, batch) -> torch.Tensor:
        x, y, t = batch
        order = torch.randperm(len(x), device=x.device)  # each glance sees the batch in a new order (their code)
        fast = self.fast_weights(learner, x[order], y[order], t[order])
        memory = self.memory_sample()
        if memory is not None:
            x, y, t = (torch.cat([a, b]) for a, b in zip((x, y, t), memory, strict=True))
        logits = learner.scenario.select(functional_call(learner.model, fast, (x,)), t, learner.active)
        return F.cross_entropy(logits, y)

    def training_step(self, learner, batch, batch_idx: int):
        optimizer = learner.optimizers()
        for _ in range(self.glances):
            loss = self.meta_loss(learner, batch)
            optimizer.zero_grad()
            learner.manual_backward(loss)
            nn.utils.clip_grad_norm_(learner.model.parameters(), self.grad_clip_norm)
            if self.learn_lr:
                nn.utils.clip_grad_norm_(self.alphas.parameters(), self.grad_clip_norm)
            optimizer.step()
        learner.record(batch_idx, loss)
        x, y, t = batch
        (self.mem_x, self.mem_y, self.mem_task), seen = reservoir(
            (self.mem_x, self.mem_y, self.mem_task), (x, y, t), int(self.n_seen), self.memory_size
        )
        self.n_seen.fill_(seen)
        return loss
