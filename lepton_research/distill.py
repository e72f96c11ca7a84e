"""The one temperature-scaled distillation loss (Hinton, Vinyals & Dean 2015), used by LwF and compression."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    The T^2 factor keeps the gradient's size independent of T (Hinton et al. 2015, section 2). KL differs from
    van de Ven's soft cross-entropy only by the teacher's entropy, a constant: the gradients are the same, and the
    term is exactly 0 when the student reproduces the teacher.
    """
    if temperature <= 0:
        raise ValueError(f"distillation temperature must be > 0, got {temperature}")
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(dim=1)
    return temperature**2 * kl.mean()
