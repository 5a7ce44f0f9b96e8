"""Training curves: test error and training loss per epoch of one run or several, as one figure.

Error (100 - top-1) on a log axis rather than top-1 on a linear one: the first epochs' 50-80%
and the last epochs' 10-13% then share a figure without squashing the end of training, where
runs differ. A trainer writes its run's curves after every epoch; a benchmark overlays runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CURVES_FILE = "curves.png"


def training_figure(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    target: float | None = None,
    references: Mapping[str, float] | None = None,
) -> Figure:
    """Left: test error per epoch of every run (raw weights dotted when the run kept an EMA);
    right: training loss. ``target`` and ``references`` are top-1 levels drawn as lines."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    figure = Figure(figsize=(11, 4.2))
    error, loss = figure.subplots(1, 2)
    any_raw = False
    for index, (name, records) in enumerate(runs.items()):
        colour = f"C{index % 10}"
        epochs = [record["epoch"] for record in records]
        error.plot(
            epochs, [100 - r["test_top1"] for r in records], color=colour, marker=".", label=name
        )
        if records and "test_raw_top1" in records[0]:
            any_raw = True
            raw = [100 - r["test_raw_top1"] for r in records]
            error.plot(epochs, raw, color=colour, linestyle=":", linewidth=1)
        loss.plot(epochs, [r["train_loss"] for r in records], color=colour, label=name)
    if target is not None:
        _level(error, f"target {target:g}%", target, "crimson", "--", left=True)
    for name, top1 in (references or {}).items():
        _level(error, f"{name} {top1:g}%", top1, "grey", "-.", left=False)
    for axis in (error, loss):
        axis.set_yscale("log", nonpositive="mask")
        # plain numbers, dense enough to read the 10-20% error where runs end
        axis.yaxis.set_major_locator(
            LogLocator(subs=(1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 4, 5, 6, 8))
        )
        axis.yaxis.set_minor_locator(NullLocator())
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    error.set_xlabel("epoch")
    error.set_ylabel("test error, % (log scale)")
    error.grid(True, which="both", alpha=0.3)
    error.legend(
        fontsize=8, title="dotted: raw weights of an EMA run" if any_raw else None, title_fontsize=8
    )
    loss.set_xlabel("epoch")
    loss.set_ylabel("training loss (log scale)")
    loss.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return figure


def _level(axis: Any, label: str, top1: float, colour: str, style: str, *, left: bool) -> None:
    """A horizontal line at the error of a top-1 level, labelled at the left or right end."""
    axis.axhline(100 - top1, color=colour, linestyle=style, linewidth=0.8)
    axis.annotate(
        label,
        (0.01 if left else 0.99, 100 - top1),
        xycoords=("axes fraction", "data"),
        color=colour,
        fontsize=8,
        ha="left" if left else "right",
        va="bottom" if left else "top",
    )


def plot_training(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: Path,
    *,
    target: float | None = None,
    references: Mapping[str, float] | None = None,
) -> None:
    """Write :func:`training_figure` as an image (the format from ``path``'s suffix), through a
    temporary file, so a reader never sees half an image."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    figure = training_figure(runs, target=target, references=references)
    figure.savefig(partial, dpi=110, format=path.suffix.lstrip(".") or "png")
    partial.replace(path)
