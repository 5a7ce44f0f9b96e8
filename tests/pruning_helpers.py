"""Shared helpers of the pruning tests."""

from __future__ import annotations

import copy

import torch
from torch import nn

from secateurs.pruning import ChannelGraph, PruningPlan, apply_masks, remove_channels


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, so that a BatchNorm is
    not an identity and masking errors show up in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            size = module.num_features
            module.running_mean.copy_(torch.rand(size, generator=generator) * 2 - 1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(size, generator=generator) - 0.5)
    return model.eval()


def masked_and_pruned_outputs(
    model: nn.Module, plan: PruningPlan, input_size: tuple[int, ...], images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    """Outputs of the masked copy and the physically pruned copy of ``model`` (eval mode)."""
    masked = copy.deepcopy(model).eval()
    apply_masks(ChannelGraph(masked, input_size), plan)
    pruned = copy.deepcopy(model).eval()
    remove_channels(ChannelGraph(pruned, input_size), plan)
    with torch.no_grad():
        return masked(images), pruned(images), pruned


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def two_convs(
    width: int = 8,
    out: int | None = None,
    *,
    groups: int = 1,
    padding: int | str = 1,
    affine: bool = True,
) -> nn.Sequential:
    """conv(3 -> width) BN ReLU conv(width -> out, groups) BN ReLU, pooled, linear to 10 classes:
    the smallest net with one prunable channel group between two convolutions."""
    out = out or width
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=padding),
        nn.BatchNorm2d(width, affine=affine),
        nn.ReLU(),
        nn.Conv2d(width, out, 3, padding=padding, groups=groups),
        nn.BatchNorm2d(out),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(out, 10),
    )
