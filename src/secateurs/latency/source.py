"""Where latency figures come from for one run: the backend, batch size and threads asked, the
tables built (or read from the cache) for each model the allocator meets, and whole models timed
against each other to check a plan."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secateurs.latency import cache
from secateurs.latency.allocate import LATENCY_TOLERANCE, meet_latency
from secateurs.latency.calibration import calibration_plans, fit
from secateurs.latency.layers import GRID, TabledLayer, tabled_layers
from secateurs.latency.predict import LatencyModel, model_signature, removal_masks
from secateurs.measurement.backends import Backend, Timing, create_backend
from secateurs.progress import progress_bar
from secateurs.pruning.allocation import Allocator, Target
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.plan import PruningPlan
from secateurs.pruning.surgery import remove_channels

log = logging.getLogger(__name__)
CHUNK = 32  # table entries timed interleaved at once (each may hold a runtime session)


@dataclass(frozen=True)
class LatencySpec:
    """What latency means for a run: ``backend`` at ``batch`` images on ``threads`` threads;
    table entries timed over ``repeats`` rounds, whole models over ``model_repeats``."""

    backend: str = "onnxruntime"
    batch: int = 1
    threads: int = 2
    repeats: int = 15
    model_repeats: int = 30
    grid: int = GRID
    cache: Path | None = None  # None: the default cache directory


class LatencySource:
    """Latency models and measured ratios for one :class:`LatencySpec` (``backend``: an
    instance to use instead of the registered one, e.g. a scripted one in tests). It is the
    allocator's :class:`~secateurs.pruning.latency_targets.LatencyTargets`."""

    tolerance = LATENCY_TOLERANCE  # relative error allowed on a measured latency ratio

    def __init__(self, spec: LatencySpec, backend: Backend | None = None) -> None:
        self.spec = spec
        self.backend = backend or create_backend(spec.backend)
        self.key = cache.CacheKey(
            cache.cpu_model(), spec.threads, self.backend.name, self.backend.versions(), spec.batch
        )
        self.directory = spec.cache or cache.default_directory()
        self._models: dict[str, LatencyModel] = {}
        # the thinnest model the floor allows, as last measured by a latency target (meet):
        # {"ratio", "ms", "dense_ms", "min_channels", "round_to"}; None before any
        self.floor: dict[str, Any] | None = None

    def timing(self, repeats: int) -> Timing:
        return Timing(self.spec.threads, warmup=max(1, repeats // 5), repeats=repeats)

    def model_for(self, graph: ChannelGraph) -> LatencyModel:
        """The latency model of ``graph``'s (dense) model; missing timings are measured, with a
        progress bar, and cached."""
        signature = model_signature(graph)
        if signature not in self._models:
            self._models[signature] = self._build(graph, signature)
        return self._models[signature]

    def efficient_widths(self, graph: ChannelGraph) -> dict[str, list[int]]:
        """Per group root, the widths the backend runs faster than any wider one."""
        return self.model_for(graph).efficient_widths(graph)

    def meet(self, allocator: Allocator, target: Target) -> tuple[PruningPlan, float]:
        """A plan meeting the latency ``target`` and its measured ratio (:func:`meet_latency`)."""
        return meet_latency(allocator, target)

    def _build(self, graph: ChannelGraph, signature: str) -> LatencyModel:
        timings = cache.load(self.directory, self.key)
        layers = tabled_layers(graph)
        measured = self._fill(timings, layers)
        if signature not in timings.calibrations:
            uncalibrated = LatencyModel(layers, timings.table, 1.0, self.spec.grid)
            dense_ms, points = self._calibrate(graph, uncalibrated)
            timings.models[signature] = dense_ms
            timings.calibrations[signature] = {"points": points}  # fitted when loaded, below
            measured += len(points)  # the dense model and each calibration plan
        if measured:
            path = cache.save(self.directory, self.key, timings)
            log.info("latency table: %d timings measured, cached in %s", measured, path)
        return LatencyModel(
            layers, timings.table, timings.models[signature], self.spec.grid,
            fit(timings.calibrations[signature]["points"]),  # refitted: the points are the data
        )  # fmt: skip

    def _calibrate(
        self, graph: ChannelGraph, table: LatencyModel
    ) -> tuple[float, list[tuple[float, float, float]]]:
        """Time the dense model and the calibration plans' pruned copies whole (interleaved);
        returns the dense milliseconds and a (table ratio, misaligned share, measured ratio)
        point per plan, the dense model's first, to fit the correction on."""
        plans = calibration_plans(graph, table.efficient_widths(graph))
        shape = (self.spec.batch, *graph.input_size)
        models = [copy.deepcopy(graph.model).eval()]
        for plan in plans:
            pruned = copy.deepcopy(graph.model)
            remove_channels(ChannelGraph(pruned, graph.input_size), plan)
            models.append(pruned.eval())
        log.info("latency calibration: timing the dense model and %d pruned copies", len(plans))
        dense_ms, *pruned_ms = self.backend.time(
            [(m, shape) for m in models], self.timing(self.spec.model_repeats)
        )
        table = LatencyModel(table.layers, table.table, dense_ms, self.spec.grid)
        points = [(1.0, 0.0, 1.0)]  # the dense model: ratio 1, every width efficient
        for plan, ms in zip(plans, pruned_ms, strict=True):
            removed = removal_masks(graph, plan)
            points.append(
                (table.table_ms(removed) / dense_ms, table.misaligned_share(removed), ms / dense_ms)
            )
        return dense_ms, points

    def _fill(self, timings: cache.CachedTimings, layers: list[TabledLayer]) -> int:
        """Measure every missing table entry (one shape's entries interleaved); returns how many."""
        todo: dict[str, tuple[TabledLayer, list[tuple[int, int]]]] = {}
        for layer in layers:
            if layer.shape.key not in todo:
                missing = timings.table.missing(layer, self.spec.grid)
                if missing:
                    todo[layer.shape.key] = (layer, missing)
        total = sum(len(points) for _, points in todo.values())
        if not total:
            return 0
        timing = self.timing(self.spec.repeats)
        with progress_bar() as bar:
            task = bar.add_task(f"latency table ({self.backend.name})", total=total, rate="")
            for layer, points in todo.values():
                for start in range(0, len(points), CHUNK):
                    chunk = points[start : start + CHUNK]
                    items = [
                        (layer.shape.module(i, o), layer.shape.input_shape(self.spec.batch, i))
                        for i, o in chunk
                    ]
                    for (i, o), ms in zip(chunk, self.backend.time(items, timing), strict=True):
                        timings.table.put(layer, i, o, ms)
                    bar.advance(task, len(chunk))
        return total

    def measured_ratio(self, graph: ChannelGraph, plan: PruningPlan) -> float:
        """Latency after / before of ``plan``'s surgery on a copy, both timed interleaved."""
        before, after = self.measured_ms(graph, plan)
        return after / before

    def measured_ms(self, graph: ChannelGraph, plan: PruningPlan) -> tuple[float, float]:
        """Milliseconds of the dense model and of ``plan``'s surgery on a copy, interleaved."""
        pruned = copy.deepcopy(graph.model).eval()
        remove_channels(ChannelGraph(pruned, graph.input_size), plan)
        dense = copy.deepcopy(graph.model).eval()
        shape = (self.spec.batch, *graph.input_size)
        before, after = self.backend.time(
            [(dense, shape), (pruned, shape)], self.timing(self.spec.model_repeats)
        )
        return before, after
