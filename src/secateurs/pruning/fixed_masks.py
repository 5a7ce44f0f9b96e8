"""Holding masked weights at zero through training, the rule every masking training-time method
(SG-CNN, Campfire) follows: gradients masked before the optimizer steps, then weights and the
optimizer's momentum masked again after it, so neither weight decay nor momentum revives them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

Masks = Sequence[tuple[nn.Parameter, Tensor]]  # (parameter, 0/1 mask broadcasting over it)


def mask_gradients(masks: Masks) -> None:
    """Masked entries' gradients to zero (call after the backward pass)."""
    for parameter, mask in masks:
        if parameter.grad is not None:
            parameter.grad.mul_(mask)


def zero_masked(masks: Masks, optimizer: torch.optim.Optimizer | None) -> None:
    """Masked entries to zero: the weights and the optimizer's per-parameter state shaped like
    them (momentum buffers)."""
    with torch.no_grad():
        for parameter, mask in masks:
            parameter.mul_(mask)
            state = optimizer.state.get(parameter, {}) if optimizer is not None else {}
            for value in state.values():
                if isinstance(value, Tensor) and value.shape == parameter.shape:
                    value.mul_(mask)
