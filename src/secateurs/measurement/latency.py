"""Latency in PyTorch eager: warm-up, many repeats, median and spread, a fixed thread count,
timed by the ``eager`` backend through the one loop (:mod:`secateurs.measurement.timing`).

On a GPU (the model's device) every timed run ends with a synchronisation, so a time covers the
work queued, not only its launch; :func:`synchronised` says whether a model's timings did.

On a shared, noisy machine only ratios measured side by side mean anything, so :func:`compare`
interleaves the models (A B A B ...) and reports the ratio of their medians.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from secateurs.device import model_device
from secateurs.measurement.backends import create_backend
from secateurs.measurement.backends.eager import torch_threads
from secateurs.measurement.timing import LatencySettings, summarise

__all__ = [
    "LatencySettings",
    "compare",
    "measure_latency",
    "summarise",
    "synchronised",
    "torch_threads",
]


def synchronised(model: nn.Module) -> bool:
    """Whether timing ``model`` waits for its device (a GPU) at the end of every run."""
    return model_device(model).type in ("cuda", "mps")


def compare(
    models: Sequence[nn.Module],
    input_size: Sequence[int],
    settings: LatencySettings | None = None,
) -> dict[int, list[dict[str, float]]]:
    """Latency of each model at each batch size in eager, timed in interleaved rounds.

    Returns ``{batch: [summary of model 0, summary of model 1, ...]}``; each summary also carries
    ``ratio`` = median of model 0 / median of that model (speed-up).
    """
    return create_backend("eager").compare(models, input_size, settings or LatencySettings())


def measure_latency(
    model: nn.Module, input_size: Sequence[int], settings: LatencySettings | None = None
) -> dict[int, dict[str, float]]:
    """Latency summary of one model at each batch size: ``{batch: {median, iqr, ...}}`` in ms."""
    return {batch: rows[0] for batch, rows in compare([model], input_size, settings).items()}
