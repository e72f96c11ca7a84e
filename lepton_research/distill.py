"""The one temperature-scaled distillation loss (Hinton, Vinyals & Dean 2015), used by LwF and compression."""

from __future__ import annotations

import torch
import torch.nn.functional as F

OVER_UNITS = ("sum", "mean")  # how the distillation term combines the units: the KL itself, or the KL / #units


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, over_units: str = "sum"
) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    The T^2 factor keeps the gradient's size independent of T (Hinton et al. 2015, section 2). KL differs from
    van de Ven's soft cross-entropy only by the teacher's entropy, a constant: the gradients are the same, and the
    term is exactly 0 when the student reproduces the teacher.

    The student may have more outputs than the teacher (class-IL: the teacher knew the old classes, the student
    also the new ones): the teacher's first k columns match the student's first k, the student's softmax runs over
    all of its outputs and the teacher's distribution is padded with zeros (van de Ven's ``loss_fn_kd``).

    ``over_units`` says how the per-unit terms are combined: ``sum`` is the KL divergence itself; ``mean`` divides it
    by the student's number of outputs, as an earlier revision of van de Ven's ``utils.loss_fn_kd`` did
    (``(-p * log q).mean()`` over batch and units, commit e17b714); the published Three-scenarios LwF numbers are
    reproduced with that form only (experiments/vandeven2019_three_scenarios/README.md).
    """
    if over_units not in OVER_UNITS:
        raise ValueError(f"distillation over_units = {over_units!r} is not allowed: {' or '.join(OVER_UNITS)}")
    if temperature <= 0:
        raise ValueError(f"distillation temperature must be > 0, got {temperature}")
    k = teacher_logits.shape[1]
    if student_logits.shape[1] < k:
        raise ValueError(f"the student has {student_logits.shape[1]} outputs, fewer than the teacher's {k}")
    log_student = F.log_softmax(student_logits / temperature, dim=1)[:, :k]
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)
    loss = temperature**2 * kl.mean()
    return loss / student_logits.shape[1] if over_units == "mean" else loss
