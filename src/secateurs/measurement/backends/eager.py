"""PyTorch eager mode: the module called under inference mode on its own device (a GPU run
waits for the device before it returns, so a time covers the work queued, not its launch)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

from secateurs.device import model_device, synchronize
from secateurs.measurement.backends.base import Backend, register_backend
from secateurs.measurement.timing import LatencySettings, Runner


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """PyTorch's CPU thread count set to ``count`` inside, put back after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def prepare_input(
    model: nn.Module, input_size: Sequence[int], batch: int, channels_last: bool
) -> tuple[nn.Module, torch.Tensor]:
    """``model`` in eval mode and a random batch on its device (both channels-last if asked)."""
    model = model.eval()
    images = torch.randn(batch, *input_size, device=model_device(model))
    if channels_last:  # a copy: converting in place (under inference mode) would spoil the model
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    return model, images


@register_backend
class EagerBackend(Backend):
    name = "eager"

    def __init__(self, channels_last: bool = False) -> None:
        self.channels_last = channels_last

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def runner(self, module: nn.Module, input_shape: Sequence[int], threads: int) -> Runner:
        model, images = prepare_input(module, input_shape[1:], input_shape[0], self.channels_last)

        def run() -> object:
            with torch.inference_mode():
                output = model(images)
            synchronize(images.device)
            return output

        return run

    def compare(
        self, models: Sequence[nn.Module], input_size: Sequence[int], settings: LatencySettings
    ) -> dict[int, list[dict[str, float]]]:
        """As :meth:`Backend.compare`, channels-last when ``settings`` asks for it."""
        if settings.channels_last and not self.channels_last:
            return EagerBackend(channels_last=True).compare(models, input_size, settings)
        return super().compare(models, input_size, settings)

    def threads(self, count: int) -> AbstractContextManager[None]:
        return torch_threads(count)
