"""Knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural
Network"): the student also matches a frozen teacher's softened class probabilities.

Used to train a model with a stronger one's help (one model, or several averaged as an
:class:`Ensemble`), and to fine-tune a pruned model with the model it was cut from as its teacher.
The teacher runs beside the student on every batch (:class:`Teacher`), or once before training on
every training image as stored (:class:`PrecomputedTeacher`): no cost per step, but its targets
ignore each step's random crop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.progress import progress_bar


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch.

    The ``T^2`` factor keeps the gradient's scale independent of the temperature (Hinton et al.,
    section 2), so the weight between this term and cross-entropy means the same at any ``T``."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


class Ensemble(nn.Module):
    """Several classifiers as one: the mean of their logits."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)

    def forward(self, images: Tensor) -> Tensor:
        return torch.stack([member(images) for member in self.members]).mean(0)


class Renormalized(nn.Module):
    """``model`` fed images normalised with another mean and std than its own: each channel is
    mapped back to pixels and normalised the way ``model`` was trained, one affine step."""

    def __init__(
        self,
        model: nn.Module,
        given: tuple[Sequence[float], Sequence[float]],
        expected: tuple[Sequence[float], Sequence[float]],
    ) -> None:
        super().__init__()
        self.model = model
        (mean, std), (own_mean, own_std) = given, expected
        scale = torch.tensor(std) / torch.tensor(own_std)
        shift = (torch.tensor(mean) - torch.tensor(own_mean)) / torch.tensor(own_std)
        self.register_buffer("scale", scale.view(1, -1, 1, 1))
        self.register_buffer("shift", shift.view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images * self.scale + self.shift)


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
    def logits(self, images: Tensor, index: Tensor | None = None) -> Tensor:
        """The soft targets' logits for ``images`` (``index``, their place in the training set,
        is not needed: the teacher sees the images themselves)."""
        logits = self.model(images)
        if self.flip:
            logits = (logits + self.model(images.flip(3))) / 2
        return logits

    def precompute(self, batches: Iterable[tuple[Tensor, Tensor, Tensor]], count: int) -> Tensor:
        """The logits of all ``count`` images that ``batches`` (index, images, labels) hold,
        row ``i`` for image ``i``."""
        table: Tensor | None = None
        with progress_bar() as bar:
            task = bar.add_task("teacher logits", total=count, rate="")
            for index, images, _ in batches:
                logits = self.logits(images)
                if table is None:
                    table = torch.full((count, logits.shape[1]), float("nan"), device=logits.device)
                table[index] = logits.float()
                bar.update(task, advance=len(index))
        if table is None or table.isnan().any():
            raise ValueError("the batches did not cover every image")
        return table


class PrecomputedTeacher:
    """A teacher's logits computed once for every training image, looked up by the image's
    index: the same targets in every epoch, whatever crop or flip the student sees."""

    def __init__(self, table: Tensor) -> None:
        self.table = table

    def to(self, memory_format: torch.memory_format) -> PrecomputedTeacher:
        return self

    def logits(self, images: Tensor, index: Tensor | None = None) -> Tensor:
        if index is None:
            raise ValueError("a precomputed teacher needs the images' indices")
        return self.table[index]
