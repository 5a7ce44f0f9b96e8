"""The typed record of a pruning run: what ``report.json`` holds, read and written through
:class:`Report` everywhere (the markdown report, the plot, ``compare``, the demo, benchmarks).

``report.json`` carries ``schema_version``. Version 1 is the flat dictionary that secateurs wrote
before the types existed (no version field); :meth:`Report.from_json` still reads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from secateurs.errors import SecateursError

SCHEMA_VERSION = 2
STAGES = ("before", "oneshot", "oneshot_uncalibrated", "masked", "after")


@dataclass
class Cost:
    """MACs and parameters of one model (``fc_params``: those of its fully-connected layers)."""

    macs: int
    params: int
    fc_params: int | None = None


@dataclass
class Accuracy:
    """Top-1 and top-5 (%) on ``images`` test images."""

    top1: float | None = None
    top5: float | None = None
    images: int | None = None


@dataclass
class Latency:
    """One batch size in one backend: medians of interleaved runs (before, after, before, ...)."""

    before_ms: float
    after_ms: float
    speedup: float  # median(before) / median(after)
    realisation: float  # speed-up / MACs reduction

    @classmethod
    def from_medians(cls, before_ms: float, after_ms: float, macs_reduction: float) -> Latency:
        speedup = before_ms / after_ms
        return cls(
            round(before_ms, 4),
            round(after_ms, 4),
            round(speedup, 4),
            round(speedup / macs_reduction, 4),
        )


@dataclass
class PruningRecord:
    """What was pruned and how: the method, its target and every setting that changes the result."""

    method: str
    target_kind: str = "macs"
    target_ratio: float | None = None  # None: per-layer ratios set no target
    achieved_ratio: float = 1.0  # kept cost of the target's kind, after / before
    method_params: dict[str, Any] = field(default_factory=dict)
    layer_ratios: dict[str, float] | None = None
    selection: str = "deterministic"
    strategy: str | None = None
    normalize: str | None = None
    round_to: int | str = 1  # a multiple, or "auto" (widths from a latency table)
    steps: int = 1
    bias_fold: bool = False
    granularity: str | None = None  # training-time methods (SPP)
    channels: dict[str, dict[str, int]] = field(default_factory=dict)  # root: before/after
    certificate: list[dict[str, Any]] = field(default_factory=list)  # PFP, per layer
    # {root, reason}: channel groups kept whole because the dependency graph cannot follow them
    protected: list[dict[str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # method-specific (SPP's state, ...)


@dataclass
class Machine:
    """Where the timings were taken (:mod:`secateurs.measurement.machine`): the CPU's model
    name, the instruction sets of ``ISA_FLAGS`` it has (None: not known), the runtimes'
    versions, the threads."""

    cpu: str
    isa: list[str] | None = None
    torch: str | None = None
    onnxruntime: str | None = None
    threads: int | None = None


@dataclass
class RunSettings:
    """How the run was done: where the model came from, training, recalibration, timing."""

    kind: str  # "prune" or a training-time method's run ("spp")
    model: str  # the architecture
    model_dir: str
    seed: int = 0
    pruning_seconds: float = 0.0  # scoring, allocation, surgery (one-shot methods)
    training_epochs: int = 0  # fine-tuning, or a training-time method's training
    training_seconds: float = 0.0
    distill_weight: float = 0.0
    bn_recalibration_batches: int = 0
    latency_threads: int = 2
    latency_repeats: int | None = None  # timed rounds per model (None: not recorded)
    machine: Machine | None = None  # where it was timed (None: reports written before it)


@dataclass
class Report:
    """A whole run's record: settings, pruning, cost and accuracy before and after, latency per
    backend (``eager``, ``onnxruntime``) and batch size."""

    settings: RunSettings
    pruning: PruningRecord
    cost_before: Cost
    cost_after: Cost
    accuracy: dict[str, Accuracy] = field(default_factory=dict)  # by stage, STAGES
    latency: dict[str, dict[str, Latency]] = field(default_factory=dict)  # backend: batch: figures
    schema_version: int = SCHEMA_VERSION

    # the figures most readers want, by name
    @property
    def slower(self) -> list[tuple[str, str, float]]:
        """(backend, batch, speed-up) of every timing where the pruned model was slower than the
        unpruned one."""
        return [
            (backend, batch, row.speedup)
            for backend, rows in self.latency.items()
            for batch, row in sorted(rows.items(), key=lambda item: int(item[0]))
            if row.speedup < 1
        ]

    @property
    def macs_kept(self) -> float:
        return self.cost_after.macs / self.cost_before.macs

    @property
    def params_kept(self) -> float:
        return self.cost_after.params / self.cost_before.params

    @property
    def macs_reduction(self) -> float:
        return self.cost_before.macs / self.cost_after.macs

    def top1(self, stage: str) -> float | None:
        """Top-1 at ``stage`` (one of STAGES), None where the run did not measure it."""
        found = self.accuracy.get(stage)
        return None if found is None else found.top1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, source: str = "report") -> Report:
        """A report from ``report.json``'s content, of this schema or the version-1 flat one."""
        if not isinstance(data, dict):
            raise SecateursError(f"{source}: not a pruning report (not a JSON object)")
        try:
            if "schema_version" not in data:
                from secateurs.report.legacy import report_from_v1

                return report_from_v1(data)
            if data["schema_version"] > SCHEMA_VERSION:
                raise SecateursError(
                    f"{source}: written by a newer secateurs (schema {data['schema_version']})"
                )
            return _from_v2(data)
        except SecateursError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SecateursError(f"{source}: not a pruning report ({error!r})") from None


def _build(cls: type, values: dict[str, Any]) -> Any:
    """A dataclass from a dict, unknown keys refused (a typo must not pass silently)."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}")
    return cls(**values)


def _from_v2(data: dict[str, Any]) -> Report:
    settings = dict(data["settings"])
    if settings.get("machine") is not None:
        settings["machine"] = _build(Machine, settings["machine"])
    report = Report(
        settings=_build(RunSettings, settings),
        pruning=_build(PruningRecord, data["pruning"]),
        cost_before=_build(Cost, data["cost_before"]),
        cost_after=_build(Cost, data["cost_after"]),
        accuracy={stage: _build(Accuracy, v) for stage, v in data.get("accuracy", {}).items()},
        latency={
            backend: {str(batch): _build(Latency, v) for batch, v in rows.items()}
            for backend, rows in data.get("latency", {}).items()
        },
        schema_version=data["schema_version"],
    )
    _check_numbers(report)
    return report


def _check_numbers(report: Report) -> None:
    """Costs and latency figures are numbers (a hand-edited "fast" is refused here, not in a
    table three functions later)."""
    for cost in (report.cost_before, report.cost_after):
        if not all(isinstance(v, int) and v > 0 for v in (cost.macs, cost.params)):
            raise ValueError(f"costs must be positive whole numbers, not {cost}")
    for rows in report.latency.values():
        for row in rows.values():
            for value in vars(row).values():
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise ValueError(f"latency figures must be numbers, not {value!r}")


def read_report(path: str | Path) -> Report:
    """The report in ``path``: a run directory or its report.json."""
    given = Path(path)
    path = given / "report.json" if given.is_dir() else given
    if not path.is_file():
        raise SecateursError(f"{path}: no such report (is {given} a pruning run?)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SecateursError(f"{path}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError:
        raise SecateursError(f"{path}: not a text (UTF-8) file") from None
    return Report.from_json(data, str(path))
