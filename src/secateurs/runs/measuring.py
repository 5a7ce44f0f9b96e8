"""Measuring a run's models: accuracy on the test split, and cost and latency before and after,
the two models timed interleaved (before, after, before, ...) in each backend of the registry
(:mod:`secateurs.measurement.backends`), all through the one timing loop."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import nn

from secateurs.data import LabelledData
from secateurs.device import model_device
from secateurs.errors import SecateursError
from secateurs.measurement import LatencySettings, count_cost, create_backend, evaluate
from secateurs.measurement.cost import params_by_layer_type
from secateurs.report import Accuracy, Cost, Latency
from secateurs.runs.job import RunJob

log = logging.getLogger(__name__)


def accuracy(model: nn.Module, data: LabelledData | None) -> Accuracy | None:
    """Top-1/top-5 of ``model`` (put in eval mode) on the test split; None without data."""
    if data is None:
        return None
    found = evaluate(model.eval(), data.batches(data.test, device=model_device(model)))
    return Accuracy(found.get("top1"), found.get("top5"), found.get("n"))


def cost(model: nn.Module, input_size: Sequence[int]) -> Cost:
    counted = count_cost(model, input_size)
    return Cost(counted["macs"], counted["params"], params_by_layer_type(model)["linear"])


def _timings(backend: str, models: list[nn.Module], input_size, settings: LatencySettings):
    """``models`` timed interleaved in the registered backend called ``backend``."""
    return create_backend(backend).compare(models, input_size, settings)


def medians(
    model: nn.Module, input_size: Sequence[int], settings: LatencySettings, backends: Sequence[str]
) -> dict[str, dict[str, float]]:
    """One model's median latency (ms) per backend and batch size; a backend that cannot run it
    is left out with a warning, as in :func:`latency`."""
    found: dict[str, dict[str, float]] = {}
    for backend in backends if settings.repeats else ():
        try:
            timed = _timings(backend, [model.eval()], input_size, settings)
        except SecateursError as error:
            log.warning("no %s latency: %s", backend, error)
            continue
        found[backend] = {str(batch): rows[0]["median"] for batch, rows in timed.items()}
    return found


def timing(job: RunJob) -> LatencySettings:
    """How a run times its models: the job's batch sizes, threads and repeats."""
    return LatencySettings(job.latency_batches, job.threads, repeats=job.latency_repeats)


def latency(
    models: tuple[nn.Module, nn.Module],
    input_size: Sequence[int],
    settings: LatencySettings,
    backends: Sequence[str],
    macs_reduction: float,
) -> dict[str, dict[str, Latency]]:
    """Speed-up and realisation of ``models`` = (before, after) per backend and batch size,
    timed interleaved (empty when ``settings`` has no repeats). A backend that cannot run the
    model (an export the runtime refuses) is left out, with a warning that names it."""
    if not settings.repeats:
        return {}
    before, after = models
    figures: dict[str, dict[str, Latency]] = {}
    for backend in backends:
        try:
            timed = _timings(backend, [before.eval(), after.eval()], input_size, settings)
        except SecateursError as error:
            log.warning("no %s latency: %s", backend, error)
            continue
        figures[backend] = {
            str(batch): Latency.from_medians(rows[0]["median"], rows[1]["median"], macs_reduction)
            for batch, rows in timed.items()
        }
    return figures
