"""Measurement: MACs and parameters, CPU latency (interleaved comparisons through one timing
loop and one backend registry), accuracy."""

from secateurs.measurement.accuracy import evaluate
from secateurs.measurement.backends import (
    Backend,
    Timing,
    backend_names,
    create_backend,
    register_backend,
)
from secateurs.measurement.cost import count_cost
from secateurs.measurement.latency import compare, measure_latency
from secateurs.measurement.timing import LatencySettings

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
