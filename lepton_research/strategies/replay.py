"""Experience replay (Chaudhry et al. 2019, "On Tiny Episodic Memories"): a small memory of past examples whose
samples are mixed into every training batch.

The memory holds at most ``memory_per_class`` examples of each class seen (or ``memory_size`` in all).
``selection: class_balanced`` keeps a uniform random subset of each class; ``reservoir`` runs reservoir sampling
(Vitter 1985) over the whole stream, so the memory is a uniform sample of everything seen, whatever the class.
Each batch gets ``replay_batch_size`` memory samples appended (default: as many as the incoming batch).
"""

from __future__ import annotations

import torch

from lepton_research.data.stream import TensorData
from lepton_research.strategies.base import Strategy

SELECTIONS = ("class_balanced", "reservoir")


class Replay(Strategy):
    def __init__(
        self,
        memory_per_class: int | None = 20,
        memory_size: int | None = None,
        selection: str = "class_balanced",
        replay_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if selection not in SELECTIONS:
            raise ValueError(f"strategy.selection = {selection!r} is not allowed: one of {', '.join(SELECTIONS)}")
        if (memory_per_class is None) == (memory_size is None):
            raise ValueError("set exactly one of strategy.memory_per_class and strategy.memory_size (the other null)")
        if (memory_per_class or memory_size) < 1:
            raise ValueError(f"the replay memory must hold at least 1 example, got {memory_per_class or memory_size}")
        if replay_batch_size is not None and replay_batch_size < 1:
            raise ValueError(f"strategy.replay_batch_size = {replay_batch_size}: use >= 1, or null")
        self.memory_per_class, self.memory_size = memory_per_class, memory_size
        self.selection, self.replay_batch_size = selection, replay_batch_size
        self.register_buffer("mem_x", torch.empty(0))
        self.register_buffer("mem_y", torch.empty(0, dtype=torch.long))
        self.register_buffer("mem_task", torch.empty(0, dtype=torch.long))
        self.register_buffer("mem_class", torch.empty(0, dtype=torch.long))  # global class of each example
        self.register_buffer("n_seen", torch.zeros((), dtype=torch.long))  # examples offered (reservoir)

    def capacity(self, n_classes_seen: int) -> int:
        return self.memory_size if self.memory_size is not None else self.memory_per_class * n_classes_seen

    def train_batch(self, batch):
        n = self.mem_x.shape[0]
        if n == 0:
            return batch
        x, y, t = batch
        k = self.replay_batch_size or x.shape[0]
        idx = torch.randint(n, (k,), device=self.mem_x.device)
        return torch.cat([x, self.mem_x[idx]]), torch.cat([y, self.mem_y[idx]]), torch.cat([t, self.mem_task[idx]])

    def after_task(self, task, learner) -> None:
        data = task.train
        global_y = (
            torch.tensor(task.classes, device=data.y.device)[data.y] if learner.scenario.name != "class_il" else data.y
        )
        if self.selection == "class_balanced":
            self._class_balanced(data, global_y, task.classes)
        else:
            self._reservoir(data, global_y)

    def _set(self, x, y, t, c) -> None:
        self.mem_x, self.mem_y, self.mem_task, self.mem_class = x, y, t, c

    def _class_balanced(self, data, global_y, new_classes) -> None:
        seen = sorted(set(self.mem_class.tolist()) | set(new_classes))
        per_class = self.capacity(len(seen)) // len(seen)
        parts = {"x": [], "y": [], "t": [], "c": []}
        old = self.memory()
        new = (data.x, data.y, data.task, global_y)
        for c in seen:
            source = old if c not in new_classes else new
            where = torch.nonzero(source[3] == c).flatten()
            keep = where[torch.randperm(len(where), device=where.device)[:per_class]]
            for key, tensor in zip("xytc", source, strict=True):
                parts[key].append(tensor[keep])
        self._set(*(torch.cat(parts[k]) for k in "xytc"))

    def _reservoir(self, data, global_y) -> None:
        fresh = (data.x, data.y, data.task, global_y)
        cap = self.capacity(len(set(self.mem_class.tolist()) | set(global_y.unique().tolist())))
        memory, seen = reservoir(self.memory(), fresh, int(self.n_seen), cap)
        self.n_seen.fill_(seen)
        self._set(*memory)

    keeps_memory = True

    def memory_data(self) -> TensorData:
        return TensorData(self.mem_x, self.mem_y, self.mem_task)

    def memory(self) -> tuple[torch.Tensor, ...]:
        return self.mem_x, self.mem_y, self.mem_task, self.mem_class


def reservoir(
    memory: tuple[torch.Tensor, ...], fresh: tuple[torch.Tensor, ...], n_seen: int, capacity: int
) -> tuple[tuple[torch.Tensor, ...], int]:
    """Reservoir sampling (Vitter 1985, algorithm R) of the ``fresh`` examples, offered in a random order, into
    ``memory`` (aligned tensors; empty ones take their shape from ``fresh``) after ``n_seen`` earlier offers.
    Returns the new memory (at most ``capacity`` rows) and the new number of offers."""
    mem = [m.clone() if m.numel() else f[:0].clone() for m, f in zip(memory, fresh, strict=True)]
    n_mem, seen = mem[0].shape[0], n_seen
    replace: dict[int, int] = {}  # memory slot -> index of the incoming example that takes it
    appended: list[int] = []
    for i in torch.randperm(len(fresh[0])).tolist():
        if n_mem + len(appended) < capacity:
            appended.append(i)
        else:
            j = int(torch.randint(seen + 1, ()))
            if j < n_mem:
                replace[j] = i
            elif j < capacity:
                appended[j - n_mem] = i
        seen += 1
    slots, sources = list(replace), list(replace.values())
    for m, f in zip(mem, fresh, strict=True):
        m[slots] = f[sources]
    return tuple(torch.cat([m, f[appended]]) for m, f in zip(mem, fresh, strict=True)), seen
