"""Measurement: MACs and parameters, CPU latency (interleaved comparisons through one timing
loop and one backend registry), accuracy."""

from secateurs.measure.accuracy import evaluate
from secateurs.measure.backends import (
    Backend,
    Timing,
    backend_names,
    create_backend,
    register_backend,
)
from secateurs.measure.cost import count_cost
from secateurs.measure.latency import compare, measure_latency
from secateurs.measure.timing import LatencySettings

__all__ = [
    "Backend",
    "LatencySettings",
    "Timing",
    "backend_names",
    "compare",
    "count_cost",
    "create_backend",
    "evaluate",
    "measure_latency",
    "register_backend",
]
