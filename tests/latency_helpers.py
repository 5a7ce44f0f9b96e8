"""A scripted latency backend for tests: no clock, a latency computed from each layer's shape, so
that what the latency model predicts can be checked against a number the test knows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from secateurs.measurement.backends import Backend, Timing, register_backend

CALL_MS = 0.01  # every call costs this much besides its layers (a runtime's overhead)


def scripted_ms(module: nn.Module, input_shape: Sequence[int], quantum: int) -> float:
    """CALL_MS plus, per convolution, its in (per group) and out channels each rounded up to
    ``quantum`` x kernel area x output positions x 1e-6 ms (a runtime padding channels to its
    vector width), and in x out x 1e-6 ms per linear layer. BatchNorm, ReLU and additions cost
    nothing."""
    total = [CALL_MS]

    def conv(layer: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        padded_out = math.ceil(layer.out_channels / quantum) * quantum
        padded_in = math.ceil(layer.in_channels // layer.groups / quantum) * quantum
        area = layer.kernel_size[0] * layer.kernel_size[1]
        positions = output.shape[0] * output.shape[2] * output.shape[3]
        total[0] += padded_out * padded_in * area * positions * 1e-6

    def linear(layer: nn.Linear, _inputs, output: torch.Tensor) -> None:
        total[0] += layer.in_features * layer.out_features * output.shape[0] * 1e-6

    hooks = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in module.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(*input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


@register_backend  # the API finds it by name: backend="scripted"
class ScriptedBackend(Backend):
    """Times by :func:`scripted_ms`; counts what it was asked to time."""

    name = "scripted"

    def __init__(self, quantum: int = 1, version: str = "1") -> None:
        self.quantum, self.version, self.timed = quantum, version, 0

    def versions(self) -> dict[str, str]:
        return {"scripted": self.version}

    def runner(self, module: nn.Module, input_shape: Sequence[int], threads: int):
        raise AssertionError("the scripted backend never runs anything")

    def time(self, items: Sequence[tuple[nn.Module, Sequence[int]]], timing: Timing) -> list[float]:
        self.timed += len(items)
        return [scripted_ms(module, shape, self.quantum) for module, shape in items]
