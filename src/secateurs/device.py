"""Where a model computes: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

A device is chosen in one place, where a run or an API call starts (``--device``, ``device=``);
everything after follows the model: tensors are created on :func:`model_device`, batches are moved
by the loader, so no module decides a device of its own.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from secateurs.errors import SecateursError

DEVICE_NAMES = "cpu, cuda, cuda:N or mps"
_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The device ``name`` means (None: the CPU); one that is not on this machine is refused in
    one line. Under ``torchrun``, a bare ``cuda`` is the GPU of this process (``LOCAL_RANK``)."""
    if name is None:
        return torch.device("cpu")
    text = str(name)
    if not _PATTERN.match(text):
        raise SecateursError(f"unknown device {text!r}: expected {DEVICE_NAMES}")
    if text == "cuda" and "LOCAL_RANK" in os.environ:
        text = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    device = torch.device(text)
    problem = device_problem(device)
    if problem:
        raise SecateursError(f"device {text} is not available: {problem}")
    return device


def device_problem(device: torch.device) -> str | None:
    """Why ``device`` cannot be used here, or None."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "this machine has no CUDA GPU that torch can use"
        index = device.index or 0
        if index >= torch.cuda.device_count():
            return f"there are {torch.cuda.device_count()} CUDA devices (0-based), not {index + 1}"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "this machine has no Apple MPS device that torch can use"
    return None


def device_check(name: str | None) -> str | None:
    """An option check (secateurs/options.py): the device's problem, in words, or None."""
    if name is None:
        return None
    try:
        resolve_device(name)
    except SecateursError as error:
        return str(error).removeprefix(f"device {name} ")
    return None


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a GPU runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
