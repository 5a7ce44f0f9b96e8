"""Measurement: MACs and parameters, CPU latency (interleaved comparisons), accuracy."""

from secateurs.measure.accuracy import evaluate
from secateurs.measure.cost import count_cost
from secateurs.measure.latency import LatencySettings, compare, measure_latency

__all__ = ["LatencySettings", "compare", "count_cost", "evaluate", "measure_latency"]
