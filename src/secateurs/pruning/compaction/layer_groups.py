"""A layer's connection grouping (:class:`LayerGroups`): which filter belongs to which group and
which input channels each filter reads. SG-CNN's self-grouping and Campfire's kernel level produce
it; the diverse group convolution and unread-channel removal consume it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LayerGroups:
    """One layer's grouping: ``labels[i]`` is filter i's group, ``keep[i, c]`` whether filter i
    reads input channel c (equal rows within a group)."""

    labels: list[int]
    keep: Tensor  # bool (C_out, C_in)

    @property
    def sparsity(self) -> float:
        """Share of the layer's connections pruned."""
        return 1.0 - float(self.keep.float().mean())

    def to_json(self) -> dict:
        return {"labels": self.labels, "keep": self.keep.int().tolist()}

    @classmethod
    def from_json(cls, data: dict) -> LayerGroups:
        return cls(list(data["labels"]), torch.tensor(data["keep"], dtype=torch.bool))


def expand_keep(keep: Tensor, weight: Tensor) -> Tensor:
    """A (C_out, C_in) keep as a 0/1 mask of ``weight``'s dtype broadcasting over it."""
    return keep.reshape(*keep.shape, *([1] * (weight.ndim - 2))).to(weight.dtype)
