"""PyTorch eager mode on the CPU: the module called under inference mode."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import torch
from torch import nn

from secateurs.latency.backends.base import Backend, Runner, register_backend
from secateurs.measure.latency import torch_threads


@register_backend
class EagerBackend(Backend):
    name = "eager"

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def runner(self, module: nn.Module, input_shape: Sequence[int], threads: int) -> Runner:
        images = torch.randn(*input_shape)

        def run() -> object:
            with torch.inference_mode():
                return module(images)

        return run

    def threads(self, count: int) -> AbstractContextManager[None]:
        return torch_threads(count)
