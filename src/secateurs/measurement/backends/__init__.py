"""Runtimes models are timed in, one file each, registered by name; all time through the one
loop of :mod:`secateurs.measurement.timing`."""

from secateurs.measurement.backends import eager, onnxruntime  # noqa: F401  (registers them)
from secateurs.measurement.backends.base import (
    Backend,
    backend_names,
    create_backend,
    register_backend,
)
from secateurs.measurement.timing import Runner, Timing, interleaved

__all__ = [
    "Backend",
    "Runner",
    "Timing",
    "backend_names",
    "create_backend",
    "interleaved",
    "register_backend",
]
