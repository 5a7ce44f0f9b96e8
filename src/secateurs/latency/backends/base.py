"""What a latency backend is: a runtime that can run a module on an input of a given shape and
say which versions of itself it is. Timing (warm-up, interleaved rounds, medians) is shared, so a
new runtime is one file: a subclass with :meth:`Backend.versions` and :meth:`Backend.runner`,
registered with :func:`register_backend`."""

from __future__ import annotations

import abc
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from secateurs.errors import SecateursError

Runner = Callable[[], object]  # one inference, inputs bound


@dataclass(frozen=True)
class Timing:
    """How a backend times: threads, untimed warm-up runs and timed rounds (medians are kept)."""

    threads: int = 2
    warmup: int = 3
    repeats: int = 15


class Backend(abc.ABC):
    """A runtime to time modules in. Subclasses give a ``name``, their ``versions`` (part of the
    latency cache's key) and a ``runner`` per module."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """The versions whose change makes earlier timings untrustworthy."""

    @abc.abstractmethod
    def runner(self, module: nn.Module, input_shape: Sequence[int], threads: int) -> Runner:
        """A call running ``module`` once on an input of ``input_shape`` (batch first)."""

    def threads(self, count: int) -> AbstractContextManager[object]:
        """A context in which the runners run on ``count`` threads (default: nothing to set)."""
        return nullcontext()

    def time(self, items: Sequence[tuple[nn.Module, Sequence[int]]], timing: Timing) -> list[float]:
        """Median milliseconds of each (module, input shape), timed in interleaved rounds
        (A B C A B C ...), so that a slow spell of the machine hits every item alike."""
        with self.threads(timing.threads):
            runners = [self.runner(module.eval(), shape, timing.threads) for module, shape in items]
            return interleaved(runners, timing.warmup, timing.repeats)


def interleaved(runners: Sequence[Runner], warmup: int, repeats: int) -> list[float]:
    """Median milliseconds of each runner over ``repeats`` interleaved rounds. In a round each
    runner runs once untimed, then once timed: its weights and buffers are in the caches, as for
    a deployed model that runs request after request, not evicted by the runner before it (which
    made ResNet-56 at batch 1 in eager 45% slower when it followed 24 other models)."""
    for _ in range(warmup):
        for run in runners:
            run()
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(max(1, repeats)):
        for index, run in enumerate(runners):
            run()
            started = time.perf_counter()
            run()
            times[index].append((time.perf_counter() - started) * 1000)
    return [statistics.median(found) for found in times]


_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make ``cls`` findable by its ``name``."""
    if not cls.name or cls.name in _BACKENDS:
        raise ValueError(f"backend name {cls.name!r} is empty or taken")
    _BACKENDS[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_backend(name: str) -> Backend:
    """The backend called ``name``; an unknown name is a one-line error naming the known ones."""
    if name not in _BACKENDS:
        raise SecateursError(f"unknown backend {name!r}: knows {', '.join(backend_names())}")
    return _BACKENDS[name]()
