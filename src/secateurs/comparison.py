"""Pruning runs side by side: one table, one plot, and a warning when they are not on equal terms.

A run is a directory holding the ``report.json`` that ``secateurs prune`` or ``secateurs spp``
wrote (or the path of such a file). Runs compare fairly only when they start from the same model
and accuracy, are fine-tuned for the same number of epochs and are evaluated on the same test
set; :func:`unequal_terms` names every way in which they do not.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secateurs.errors import SecateursError
from secateurs.report import Report, read_report


@dataclass(frozen=True)
class RunSummary:
    """The figures of one pruning run that a comparison needs."""

    name: str
    method: str
    series: (
        str  # the method with its non-default settings, e.g. "l1 uniform", "wsp saliency=weights"
    )
    model: str
    macs_kept: float
    params_kept: float
    top1_before: float | None
    top1_oneshot: float | None
    top1_after: float | None
    training_epochs: int | None  # every epoch the run trained (report.settings.training_epochs)
    test_images: int | None
    speedup: dict[str, float] = field(default_factory=dict)  # eager, by batch size
    onnx_speedup: dict[str, float] = field(default_factory=dict)  # onnxruntime, by batch size

    @property
    def top1(self) -> float | None:
        """The run's final accuracy: after fine-tuning, or right after pruning without it."""
        return self.top1_after if self.top1_after is not None else self.top1_oneshot


def _series(report: Report) -> str:
    """The method's name, then every setting that differs from its default (seeds aside): runs of
    one series differ only in seed and target, so they form one curve."""
    from secateurs.pruning.methods import list_methods, method_class

    pruning, settings = report.pruning, report.settings
    method = pruning.method
    parts = [method]
    if pruning.strategy not in (None, "global"):
        parts.append(str(pruning.strategy))
    if pruning.granularity:  # SPP
        parts.append(pruning.granularity)
    if method in list_methods():
        defaults = inspect.signature(method_class(method).__init__).parameters
        for key, value in sorted(pruning.method_params.items()):
            default = defaults[key].default if key in defaults else None
            if key != "seed" and value != default:
                parts.append(f"{key}={value}")
    if settings.distill_weight and settings.training_epochs:
        parts.append(f"distill={settings.distill_weight:g}")
    # the run's settings that change what is pruned or how
    if pruning.steps > 1:
        parts.append(f"steps={pruning.steps}")
    if pruning.round_to != 1:
        parts.append(f"round-to={pruning.round_to}")
    if pruning.normalize is not None:
        parts.append(f"normalize={pruning.normalize}")
    if pruning.bias_fold:
        parts.append("fold-bias")
    if settings.bn_recalibration_batches:
        parts.append(f"recalibrate-bn={settings.bn_recalibration_batches}")
    if pruning.layer_ratios:
        parts.append("layer-ratios")
    return " ".join(parts)


def _summary(name: str, report: Report) -> RunSummary:
    tuned = report.settings.kind != "prune" or report.settings.training_epochs != 0
    after = report.accuracy.get("after")
    return RunSummary(
        name=name,
        method=report.pruning.method,
        series=_series(report),
        model=report.settings.model,
        macs_kept=report.macs_kept,
        params_kept=report.params_kept,
        top1_before=report.top1("before"),
        top1_oneshot=report.top1("oneshot"),
        # a pruning run without fine-tuning has no "after" beyond its one-shot accuracy
        top1_after=report.top1("after") if tuned else None,
        training_epochs=report.settings.training_epochs,
        test_images=after.images if after else None,
        speedup=_speedups(report, "eager"),
        onnx_speedup=_speedups(report, "onnxruntime"),
    )


def _speedups(report: Report, backend: str) -> dict[str, float]:
    return {batch: float(entry.speedup) for batch, entry in report.latency.get(backend, {}).items()}


def _names(paths: list[Path]) -> list[str]:
    """Each run's directory name, or parent/name where two runs share a name."""
    runs = [(path if path.is_dir() else path.parent) for path in paths]
    short = [run.name for run in runs]
    return [
        f"{run.parent.name}/{run.name}" if short.count(run.name) > 1 else run.name for run in runs
    ]


def load_runs(paths: list[str | Path]) -> list[RunSummary]:
    """The summaries of the runs at ``paths`` (run directories or report.json files), in order."""
    if not paths:
        raise SecateursError("nothing to compare: give at least one run directory")
    resolved = [Path(path) for path in paths]
    runs = []
    for name, path in zip(_names(resolved), resolved, strict=True):
        report = read_report(path)
        try:
            runs.append(_summary(name, report))
        except ZeroDivisionError as error:
            raise SecateursError(f"{path}: not a pruning report ({error!r})") from None
    return runs


def unequal_terms(runs: list[RunSummary]) -> list[str]:
    """One line per property the runs should share but do not (empty when they compare fairly)."""
    properties = {
        "model": lambda run: run.model,
        "unpruned top-1": lambda run: run.top1_before,
        "fine-tuning epochs": lambda run: run.training_epochs,
        "test images": lambda run: run.test_images,
    }
    lines = []
    for label, value in properties.items():
        groups: dict[Any, list[str]] = {}
        for run in runs:
            groups.setdefault(value(run), []).append(run.name)
        if len(groups) > 1:
            listed = "; ".join(
                f"{found} ({', '.join(names) if len(names) <= 3 else f'{len(names)} runs'})"
                for found, names in groups.items()
            )
            lines.append(f"runs differ in {label}: {listed}")
    return lines


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(runs: list[RunSummary]) -> str:
    """A Markdown table, one row per run; speed-up columns (eager, then onnxruntime beside it
    when any run was timed there) for every batch size any run timed."""
    batches = sorted({batch for run in runs for batch in run.speedup}, key=int)
    onnx = sorted({batch for run in runs for batch in run.onnx_speedup}, key=int)
    header = ["run", "method", "MACs kept", "params kept", "top-1 one-shot", "top-1 after FT"]
    header += [f"speed-up b{batch}" for batch in batches]
    header += [f"onnxruntime speed-up b{batch}" for batch in onnx]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for run in runs:
        cells = [
            run.name,
            run.series,
            f"{run.macs_kept:.3f}",
            f"{run.params_kept:.3f}",
            _fmt(run.top1_oneshot),
            _fmt(run.top1_after),
        ]
        cells += [
            f"{run.speedup[batch]:.2f}x" if batch in run.speedup else "-" for batch in batches
        ]
        cells += [f"{run.onnx_speedup[b]:.2f}x" if b in run.onnx_speedup else "-" for b in onnx]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_comparison(runs: list[RunSummary], path: Path) -> None:
    """Top-1 against the fraction of MACs kept (left) and of parameters kept (right).

    Filled markers: after fine-tuning; hollow: right after pruning (runs without fine-tuning).
    One colour per series (a method with its settings); random runs are grey, so every
    criterion can be read against them. A series with runs at several targets is joined by a
    line through its mean per target (seeds averaged). A dashed line marks the unpruned accuracy
    when the runs share one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    colours = _series_colours(runs, plt.get_cmap("tab10"))
    befores = {run.top1_before for run in runs}
    unpruned = next(iter(befores)) if len(befores) == 1 else None
    for axis, attribute, label in (
        (axes[0], "macs_kept", "MACs kept (after / before)"),
        (axes[1], "params_kept", "parameters kept (after / before)"),
    ):
        _plot_panel(axis, runs, attribute, colours)
        if unpruned is not None:
            axis.axhline(unpruned, color="black", linestyle="--", linewidth=0.8)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 (%)")
    axes[1].legend(handles=_legend_handles(runs, colours, unpruned), fontsize=8, loc="best")
    figure.suptitle(f"{len(runs)} pruning runs of {', '.join(sorted({r.model for r in runs}))}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _series_colours(runs: list[RunSummary], palette: Any) -> dict[str, Any]:
    """One colour of ``palette`` per series, in name order; random series grey, listed last."""
    series = sorted({run.series for run in runs if run.method != "random"})
    colours = {name: palette(index % 10) for index, name in enumerate(series)}
    for run in runs:
        if run.method == "random":
            colours[run.series] = (0.55, 0.55, 0.55, 1.0)
    return colours


def _plot_panel(axis: Any, runs: list[RunSummary], attribute: str, colours: dict) -> None:
    """Every run's top-1 against ``attribute`` (filled: fine-tuned, hollow: one-shot), named,
    and each series' curve through its mean per target."""
    for run in runs:
        if run.top1 is None:
            continue
        x = getattr(run, attribute)
        colour = colours[run.series]
        hollow = run.top1_after is None
        axis.scatter(
            x,
            run.top1,
            s=50,
            facecolors="none" if hollow else [colour],
            edgecolors=[colour],
            zorder=3,
        )
        axis.annotate(
            run.name, (x, run.top1), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
    for name, (xs, ys) in _curves(runs, attribute).items():
        axis.plot(xs, ys, color=colours[name], linewidth=1, alpha=0.7, zorder=2)


def _legend_handles(
    runs: list[RunSummary], colours: dict[str, Any], unpruned: float | None
) -> list[Any]:
    """The legend: one entry per series, then the marker kinds when both occur, then the
    unpruned accuracy's dashed line when there is one."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="", color=colour, label=name)
        for name, colour in colours.items()
    ]
    kinds = {run.top1_after is None for run in runs if run.top1 is not None}
    if len(kinds) > 1:
        handles.append(Line2D([], [], marker="o", linestyle="", color="black", label="fine-tuned"))
        handles.append(
            Line2D(
                [], [], marker="o", linestyle="", color="black", fillstyle="none", label="one-shot"
            )
        )
    if unpruned is not None:
        handles.append(
            Line2D([], [], color="black", linestyle="--", label=f"unpruned {unpruned:.2f}%")
        )
    return handles


def _curves(runs: list[RunSummary], attribute: str) -> dict[str, tuple[list, list]]:
    """Per series with runs at two or more MACs targets: the mean point of each target (seeds
    averaged), in order of MACs kept."""
    points: dict[str, dict[float, list[RunSummary]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.top1 is not None:
            points[run.series][round(run.macs_kept, 2)].append(run)
    curves = {}
    for name, targets in points.items():
        if len(targets) < 2:
            continue
        means = sorted(
            (
                sum(getattr(run, attribute) for run in group) / len(group),
                sum(run.top1 for run in group) / len(group),  # type: ignore[misc]
            )
            for group in targets.values()
        )
        curves[name] = ([x for x, _ in means], [y for _, y in means])
    return curves
