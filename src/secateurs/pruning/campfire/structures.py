"""Campfire's sparsity structures inside one layer, each a keep mask shaped like the weight with
an exact pruned count per structure, chosen by magnitude:

- ``window``: inside every kh x kw kernel, the ``pruned`` smallest |w| are zero (every kernel of
  the layer keeps the same number of non-zeros: a fixed-size window for an accelerator);
- ``kernel``: in every filter, the ``pruned`` whole kernels of smallest L1 norm are zero (every
  filter reads the same number of input channels);
- ``unstructured``: the ``pruned`` smallest |w| of the whole tensor (the AGP baseline).

Masks only ever lose entries: an entry pruned earlier scores -inf and is chosen first again, so a
gradual schedule never revives a weight (its value is zero anyway).
"""

from __future__ import annotations

import torch
from torch import Tensor

CONV_LOCAL = ("window", "kernel", "unstructured")


def keep_largest(scores: Tensor, pruned: int, previous: Tensor | None = None) -> Tensor:
    """Bool mask over ``scores`` (..., n): in each row the ``pruned`` smallest entries False;
    entries False in ``previous`` count as smallest (ties broken by position, stably)."""
    n = scores.shape[-1]
    pruned = min(max(pruned, 0), n)
    if previous is not None:
        scores = scores.masked_fill(~previous, float("-inf"))
    order = torch.argsort(scores, dim=-1, stable=True)  # ascending: pruned first
    keep = torch.ones_like(scores, dtype=torch.bool)
    return keep.scatter(-1, order[..., :pruned], False)


def structure_size(weight_shape: tuple[int, ...], granularity: str) -> int:
    """How many entries one structure holds: kernel positions, input channels, or all weights."""
    if granularity == "window":
        return weight_shape[2] * weight_shape[3]
    if granularity == "kernel":
        return weight_shape[1]
    total = 1
    for size in weight_shape:
        total *= size
    return total


def structure_keep(
    weight: Tensor, granularity: str, pruned: int, previous: Tensor | None = None
) -> Tensor:
    """The keep mask (bool, shaped like ``weight``) of ``pruned`` entries per structure."""
    magnitude = weight.detach().abs()
    shape = weight.shape
    if granularity == "window":
        rows = magnitude.reshape(shape[0], shape[1], -1)
        before = previous.reshape(rows.shape) if previous is not None else None
        return keep_largest(rows, pruned, before).reshape(shape)
    if granularity == "kernel":
        norms = magnitude.reshape(shape[0], shape[1], -1).sum(-1)
        before = previous.reshape(shape[0], shape[1], -1).any(-1) if previous is not None else None
        kept = keep_largest(norms, pruned, before)
        return kept.reshape(shape[0], shape[1], *([1] * (len(shape) - 2))).expand(shape).clone()
    if granularity == "unstructured":
        flat = magnitude.reshape(1, -1)
        before = previous.reshape(1, -1) if previous is not None else None
        return keep_largest(flat, pruned, before).reshape(shape)
    raise ValueError(f"unknown structure {granularity!r}")


def layer_keep(weight: Tensor, pruned: dict[str, int], previous: Tensor | None = None) -> Tensor:
    """The product of every structure's mask: ``pruned[granularity]`` entries per structure."""
    keep = torch.ones_like(weight, dtype=torch.bool)
    for granularity, count in pruned.items():
        keep &= structure_keep(weight, granularity, count, previous)
    return keep
