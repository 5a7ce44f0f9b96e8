"""What a latency backend is: a runtime that can run a module on an input of a given shape and
say which versions of itself it is. Timing is not the backend's: every backend times through
:func:`secateurs.measurement.timing.interleaved` (warm-up, interleaved rounds, medians), so a new
runtime is one file: a subclass with :meth:`Backend.versions` and :meth:`Backend.runner`,
registered with :func:`register_backend`."""

from __future__ import annotations

import abc
import statistics
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

from torch import nn

from secateurs.errors import SecateursError
from secateurs.measurement.timing import LatencySettings, Runner, Timing, interleaved, with_ratios


class Backend(abc.ABC):
    """A runtime to time modules in. Subclasses give a ``name``, their ``versions`` (part of the
    latency cache's key) and a ``runner`` per module; ``prepare`` (once per model, before any
    batch size) is where a backend converts a model, e.g. exports it."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """The versions whose change makes earlier timings untrustworthy."""

    @abc.abstractmethod
    def runner(self, module: Any, input_shape: Sequence[int], threads: int) -> Runner:
        """A call running ``module`` (as :meth:`prepare` returned it) once on an input of
        ``input_shape`` (batch first), returning when the work is done."""

    def prepare(self, module: nn.Module, input_size: Sequence[int]) -> Any:
        """``module`` made ready to run on inputs of ``input_size`` (no batch); default: eval."""
        return module.eval()

    def threads(self, count: int) -> AbstractContextManager[object]:
        """A context in which the runners run on ``count`` threads (default: nothing to set)."""
        return nullcontext()

    def measure(
        self, items: Sequence[tuple[nn.Module, Sequence[int]]], timing: Timing
    ) -> list[list[float]]:
        """Milliseconds of every timed run of each (module, input shape), interleaved."""
        with self.threads(timing.threads):
            runners = [
                self.runner(self.prepare(module, shape[1:]), shape, timing.threads)
                for module, shape in items
            ]
            return interleaved(runners, timing.warmup, timing.repeats)

    def time(self, items: Sequence[tuple[nn.Module, Sequence[int]]], timing: Timing) -> list[float]:
        """Median milliseconds of each (module, input shape), timed in interleaved rounds."""
        return [statistics.median(found) for found in self.measure(items, timing)]

    def compare(
        self, models: Sequence[Any], input_size: Sequence[int], settings: LatencySettings
    ) -> dict[int, list[dict[str, float]]]:
        """Summaries of each model at each batch size, timed interleaved, with ``ratio`` =
        median of model 0 / that model's median: ``{batch: [summary, ...]}``."""
        prepared = [self.prepare(model, input_size) for model in models]
        results: dict[int, list[dict[str, float]]] = {}
        with self.threads(settings.threads):
            for batch in settings.batch_sizes:
                shape = (batch, *input_size)
                runners = [self.runner(p, shape, settings.threads) for p in prepared]
                results[batch] = with_ratios(
                    interleaved(runners, settings.warmup, settings.repeats)
                )
        return results


_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make ``cls`` findable by its ``name``."""
    if not cls.name or cls.name in _BACKENDS:
        raise ValueError(f"backend name {cls.name!r} is empty or taken")
    _BACKENDS[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    """The registered backends' names, sorted."""
    return sorted(_BACKENDS)


def create_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name`` (``options``: its constructor's); an unknown name is a
    one-line error naming the known ones."""
    if name not in _BACKENDS:
        raise SecateursError(f"unknown backend {name!r}: knows {', '.join(backend_names())}")
    return _BACKENDS[name](**options)
