"""Knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural
Network"): the student also matches a frozen teacher's softened class probabilities.

Used to train a model with a stronger one's help, and to fine-tune a pruned model with the model it
was cut from as its teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch.

    The ``T^2`` factor keeps the gradient's scale independent of the temperature (Hinton et al.,
    section 2), so the weight between this term and cross-entropy means the same at any ``T``."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


class Teacher:
    """A frozen model in evaluation mode whose logits are soft targets; with ``flip``, the
    logits are averaged with those of the mirrored images (a stronger teacher, one more
    forward pass a step)."""

    def __init__(self, model: nn.Module, flip: bool = False) -> None:
        self.model = model.eval().requires_grad_(False)
        self.flip = flip

    def to(self, memory_format: torch.memory_format) -> Teacher:
        self.model = self.model.to(memory_format=memory_format)
        return self

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        logits = self.model(images)
        if self.flip:
            logits = (logits + self.model(images.flip(3))) / 2
        return logits
