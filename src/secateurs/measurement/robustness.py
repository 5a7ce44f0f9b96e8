"""Accuracy under adversarial attack: FGSM and PGD with an L-inf budget in pixel space.

Attacks perturb the image as stored (values in [0, 1]) and stay in [0, 1]; the model sees the
perturbed image through its own normalisation, so an epsilon of 8/255 means 8 grey levels, the
convention of the robustness literature, whatever the model's mean and std. PGD starts from a
random point of the epsilon ball drawn from a seeded generator and takes ``steps`` signed-gradient
steps of ``step_size`` x epsilon, projecting back after each: the same seed gives the same
accuracy on the same machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.data.dataset import ImageSet


@dataclass
class AttackSettings:
    epsilons: Sequence[float] = (2, 8)  # in grey levels of 255
    pgd_steps: int = 10
    step_size: float = 0.25  # PGD's step, as a fraction of epsilon
    batch_size: int = 250
    seed: int = 0


class Normalised(nn.Module):
    """``model`` taking images in [0, 1]: its normalisation applied first."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return self.model((images - self.mean) / self.std)


def _gradient_sign(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    images = images.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(images), labels)
        (gradient,) = torch.autograd.grad(loss, images)
    return gradient.sign()


def fgsm(model: nn.Module, images: Tensor, labels: Tensor, epsilon: float) -> Tensor:
    """One signed-gradient step of size ``epsilon`` (images in [0, 1])."""
    return (images + epsilon * _gradient_sign(model, images, labels)).clamp(0, 1)


def pgd(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    epsilon: float,
    settings: AttackSettings,
    generator: torch.Generator,
) -> Tensor:
    """Projected gradient descent in the L-inf ball of ``epsilon`` around ``images``."""
    noise = torch.rand(images.shape, generator=generator, dtype=images.dtype) * 2 - 1
    adversarial = (images + epsilon * noise.to(images.device)).clamp(0, 1)
    for _ in range(settings.pgd_steps):
        step = settings.step_size * epsilon * _gradient_sign(model, adversarial, labels)
        adversarial = adversarial + step
        adversarial = torch.min(torch.max(adversarial, images - epsilon), images + epsilon)
        adversarial = adversarial.clamp(0, 1)
    return adversarial.detach()


def robust_accuracy(
    model: nn.Module,
    image_set: ImageSet,
    mean: Sequence[float],
    std: Sequence[float],
    settings: AttackSettings | None = None,
) -> dict[str, float]:
    """Top-1 (%) on clean images and under FGSM and PGD at each epsilon: keys ``clean``,
    ``fgsm@E`` and ``pgd@E`` (E in grey levels), and ``n`` (images)."""
    settings = settings or AttackSettings()
    was_training = model.training
    wrapped = Normalised(model, mean, std).eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(settings.seed)
    correct: dict[str, int] = {"clean": 0}
    for start in range(0, len(image_set), settings.batch_size):
        images = image_set.images[start : start + settings.batch_size].float().div(255).to(device)
        labels = image_set.labels[start : start + settings.batch_size].to(device)
        attacked = {"clean": images}
        for level in settings.epsilons:
            epsilon = level / 255
            attacked[f"fgsm@{level:g}"] = fgsm(wrapped, images, labels, epsilon)
            attacked[f"pgd@{level:g}"] = pgd(wrapped, images, labels, epsilon, settings, generator)
        with torch.no_grad():
            for key, batch in attacked.items():
                hits = int((wrapped(batch).argmax(1) == labels).sum())
                correct[key] = correct.get(key, 0) + hits
    model.train(was_training)
    found = {key: 100.0 * hits / max(len(image_set), 1) for key, hits in correct.items()}
    found["n"] = len(image_set)
    return found
