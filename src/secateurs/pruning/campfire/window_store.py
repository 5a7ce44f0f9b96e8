"""Window sparsity stored compactly: every kernel keeps the same number k of non-zeros, so a
layer is its kept values (C_out, C_in, k) and their positions inside the kernel (uint8, same
shape): k / (kh x kw) of the dense values plus one byte each for the pattern. Written with
safetensors beside the model (``window.safetensors``); unpacking gives the dense weights back
exactly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from secateurs.errors import SecateursError


def pack_window(weight: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """(values, positions) of a weight whose kernels each keep the same number of entries."""
    out_channels, in_channels = weight.shape[:2]
    flat_keep = keep.reshape(out_channels, in_channels, -1)
    counts = flat_keep.sum(-1)
    if not bool((counts == counts.flatten()[0]).all()):
        raise SecateursError("window packing needs the same count of non-zeros in every kernel")
    kept = int(counts.flatten()[0])
    # positions of the kept entries, in kernel order (stable sort puts True last, in order)
    order = torch.argsort(flat_keep.to(torch.uint8), dim=-1, stable=True)[..., -kept:]
    positions = order.sort(dim=-1).values if kept else order
    values = weight.detach().reshape(out_channels, in_channels, -1).gather(-1, positions)
    return values.contiguous(), positions.to(torch.uint8).contiguous()


def unpack_window(values: Tensor, positions: Tensor, kernel_size: tuple[int, int]) -> Tensor:
    """The dense weight (C_out, C_in, kh, kw) the packed form stands for."""
    out_channels, in_channels, _ = values.shape
    dense = torch.zeros(
        out_channels, in_channels, kernel_size[0] * kernel_size[1], dtype=values.dtype
    )
    dense.scatter_(-1, positions.long(), values)
    return dense.reshape(out_channels, in_channels, *kernel_size)


def save_windows(path: Path, layers: Mapping[str, tuple[Tensor, Tensor]]) -> int:
    """Write ``{layer: (weight, keep)}`` packed; returns the file's size in bytes."""
    tensors = {}
    for name, (weight, keep) in layers.items():
        values, positions = pack_window(weight, keep)
        tensors[f"{name}.values"], tensors[f"{name}.positions"] = values, positions
    save_file(tensors, str(path))
    return path.stat().st_size


def load_windows(path: Path, kernel_sizes: Mapping[str, tuple[int, int]]) -> dict[str, Tensor]:
    """The dense weights of every layer in a file written by :func:`save_windows`."""
    tensors = load_file(str(path))
    return {
        name: unpack_window(tensors[f"{name}.values"], tensors[f"{name}.positions"], size)
        for name, size in kernel_sizes.items()
    }
