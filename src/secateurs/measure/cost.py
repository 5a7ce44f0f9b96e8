"""Multiply-accumulate operations (MACs) and parameter counts, by Torch-Pruning's op counter.

MACs count one multiply-add as one operation, for one image; many papers call this "FLOPs".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn


def example_input(input_size: Sequence[int], batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, *input_size)


def count_cost(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    """``macs`` for one image of ``input_size`` (C, H, W) and ``params`` of ``model``."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_input(input_size))
    model.train(was_training)
    return {"macs": int(macs), "params": int(params)}
