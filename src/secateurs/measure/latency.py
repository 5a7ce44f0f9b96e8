"""Latency: warm-up, many repeats, median and spread, a fixed thread count.

On a GPU (the model's device) every timed run ends with a synchronisation, so a time covers the
work queued, not only its launch; :func:`synchronised` says whether a model's timings did.

On a shared, noisy machine only ratios measured side by side mean anything, so :func:`compare`
interleaves the models (A B A B ...) and reports the ratio of their medians.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from secateurs.device import model_device, synchronize


@dataclass
class LatencySettings:
    batch_sizes: Sequence[int] = (1, 64)
    threads: int = 2
    warmup: int = 5  # untimed runs before timing
    repeats: int = 30  # timed runs per model and batch size
    channels_last: bool = False


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """PyTorch's CPU thread count set to ``count`` inside, put back after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _prepare(model: nn.Module, input_size: Sequence[int], batch: int, channels_last: bool):
    model = model.eval()
    images = torch.randn(batch, *input_size, device=model_device(model))
    if channels_last:  # a copy: converting in place (under inference mode) would spoil the model
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    return model, images


def _time_once(model: nn.Module, images: torch.Tensor) -> float:
    synchronize(images.device)  # nothing queued before the clock starts
    started = time.perf_counter()
    model(images)
    synchronize(images.device)  # a GPU returns before it has computed
    return (time.perf_counter() - started) * 1000


def synchronised(model: nn.Module) -> bool:
    """Whether timing ``model`` waits for its device (a GPU) at the end of every run."""
    return model_device(model).type in ("cuda", "mps")


def summarise(times_ms: list[float]) -> dict[str, float]:
    """Median, interquartile range and extremes of a list of times in milliseconds."""
    quartiles = statistics.quantiles(times_ms, n=4) if len(times_ms) > 1 else times_ms * 3
    return {
        "median": statistics.median(times_ms),
        "iqr": quartiles[2] - quartiles[0],
        "min": min(times_ms),
        "max": max(times_ms),
        "repeats": len(times_ms),
    }


@torch.inference_mode()
def compare(
    models: Sequence[nn.Module],
    input_size: Sequence[int],
    settings: LatencySettings | None = None,
) -> dict[int, list[dict[str, float]]]:
    """Latency of each model at each batch size, timed in interleaved rounds.

    Returns ``{batch: [summary of model 0, summary of model 1, ...]}``; with two models each
    batch's summaries also carry ``ratio`` = median of model 0 / median of that model (speed-up).
    """
    settings = settings or LatencySettings()
    results: dict[int, list[dict[str, float]]] = {}
    with torch_threads(settings.threads):
        for batch in settings.batch_sizes:
            prepared = [_prepare(m, input_size, batch, settings.channels_last) for m in models]
            for _ in range(settings.warmup):
                for model, images in prepared:
                    model(images)
            times: list[list[float]] = [[] for _ in prepared]
            for _ in range(settings.repeats):
                for index, (model, images) in enumerate(prepared):
                    times[index].append(_time_once(model, images))
            summaries = [summarise(t) for t in times]
            for summary in summaries:
                summary["ratio"] = summaries[0]["median"] / summary["median"]
            results[batch] = summaries
    return results


def measure_latency(
    model: nn.Module, input_size: Sequence[int], settings: LatencySettings | None = None
) -> dict[int, dict[str, float]]:
    """Latency summary of one model at each batch size: ``{batch: {median, iqr, ...}}`` in ms."""
    return {batch: rows[0] for batch, rows in compare([model], input_size, settings).items()}
