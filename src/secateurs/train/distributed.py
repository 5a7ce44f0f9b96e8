"""torch.distributed set-up for runs started by ``torchrun``: gloo on CPU; on CUDA, NCCL with one
process per GPU (the process's ``LOCAL_RANK``, which :func:`secateurs.device.resolve_device` maps
a bare ``cuda`` to)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment, if there is one:
    NCCL when this process computes on a CUDA ``device`` (made current), gloo otherwise."""
    device = device or torch.device("cpu")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def all_sum(values: list[float], context: DistributedContext) -> list[float]:
    """Element-wise sum of ``values`` over all ranks."""
    if not context.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather(value: object, context: DistributedContext) -> list[object]:
    if not context.enabled:
        return [value]
    gathered: list[object] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_object(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` on every rank (picklable); the other ranks block in the collective
    until rank 0 gets here (a decision only rank 0 times)."""
    if not context.enabled:
        return value
    box = [value if context.is_main else None]
    device = context.device if context.device.type == "cuda" else None
    dist.broadcast_object_list(box, src=0, device=device)
    return box[0]


def barrier(context: DistributedContext) -> None:
    """Wait until every rank gets here (nothing to wait for outside a distributed run)."""
    if context.enabled:
        dist.barrier()


def broadcast_buffers(model: nn.Module, context: DistributedContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward pass, but the last training forward
    updates each rank's statistics with its own batch, so without this the ranks' models differ.
    """
    if not context.enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined, before the interpreter exits: Gloo's worker
    threads still alive at interpreter shutdown can abort the process (SIGABRT)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
