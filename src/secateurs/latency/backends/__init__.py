"""Runtimes latency is modelled in, one file each, registered by name."""

from secateurs.latency.backends import eager, onnx  # noqa: F401  (registers them)
from secateurs.latency.backends.base import (
    Backend,
    Timing,
    backend_names,
    create_backend,
    interleaved,
    register_backend,
)

__all__ = [
    "Backend",
    "Timing",
    "backend_names",
    "create_backend",
    "interleaved",
    "register_backend",
]
