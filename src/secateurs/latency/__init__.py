"""Latency models per backend: per-layer tables measured on this machine (cached on disk, keyed
by CPU, threads, backend, versions and batch size), a whole pruned model's latency predicted from
a plan, and the allocation that meets a latency target (docs/latency.md)."""

from secateurs.latency.predict import LatencyModel
from secateurs.latency.source import LatencySource, LatencySpec
from secateurs.measurement.backends import Backend, Timing, backend_names, create_backend

__all__ = [
    "Backend",
    "LatencyModel",
    "LatencySource",
    "LatencySpec",
    "Timing",
    "backend_names",
    "create_backend",
]
