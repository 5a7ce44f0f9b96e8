"""The one timing loop every latency in secateurs goes through: reports, the keep-if-faster
compaction decisions and the latency tables (docs/decisions.md, "One timing stack").

:func:`interleaved` runs ``warmup`` untimed rounds, then ``repeats`` rounds in which every runner
runs once untimed and at once again timed (A A' B B' A A' B B' ..., ' timed), so that a slow
spell of the machine hits every runner alike and each timed run finds its model's weights in the
caches, as a deployed model serving request after request does. Only ratios measured side by
side in one loop mean anything on a shared machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Runner = Callable[[], object]  # one inference, inputs bound; returns when the work is done

WARM_RUNS_PER_ROUND = 1  # untimed runs of a model right before each of its timed runs


@dataclass
class LatencySettings:
    """How reports and compaction decisions time: batch sizes, threads, rounds."""

    batch_sizes: Sequence[int] = (1, 64)
    threads: int = 2
    warmup: int = 5  # untimed rounds before the timed ones
    repeats: int = 30  # timed runs per model and batch size
    channels_last: bool = False


@dataclass(frozen=True)
class Timing:
    """How a latency table times: threads, untimed warm-up rounds and timed rounds."""

    threads: int = 2
    warmup: int = 3
    repeats: int = 15


def interleaved(runners: Sequence[Runner], warmup: int, repeats: int) -> list[list[float]]:
    """Milliseconds of each runner's timed runs over ``max(1, repeats)`` interleaved rounds,
    after ``warmup`` untimed rounds. In a round each runner runs ``WARM_RUNS_PER_ROUND`` times
    untimed, then once timed: timing one model right after others evicted its weights made
    ResNet-56 at batch 1 in eager 45% slower (docs/latency.md)."""
    for _ in range(warmup):
        for run in runners:
            run()
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(max(1, repeats)):
        for index, run in enumerate(runners):
            for _ in range(WARM_RUNS_PER_ROUND):
                run()
            started = time.perf_counter()
            run()
            times[index].append((time.perf_counter() - started) * 1000)
    return times


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


def with_ratios(times: list[list[float]]) -> list[dict[str, float]]:
    """Each runner's summary, with ``ratio`` = median of runner 0 / its median (speed-up)."""
    summaries = [summarise(found) for found in times]
    for summary in summaries:
        summary["ratio"] = summaries[0]["median"] / summary["median"]
    return summaries
