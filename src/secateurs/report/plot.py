"""Plots: a pruning report as one figure (cost and speed before/after, channels per layer)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from secateurs.report.schema import Report

COST_COLOUR = "#4c72b0"
BACKEND_COLOURS = {"eager": "#dd8452", "onnxruntime": "#55a868"}


def _ratios(report: Report) -> tuple[list[str], list[float], list[str]]:
    """Bar names, after/before ratios and colours: MACs, parameters, then each latency."""
    names, ratios = ["MACs", "params"], [report.macs_kept, report.params_kept]
    colours = [COST_COLOUR, COST_COLOUR]
    for backend, batches in report.latency.items():
        for batch, entry in batches.items():
            names.append(f"{backend}\nbatch {batch}")
            ratios.append(entry.after_ms / entry.before_ms)
            colours.append(BACKEND_COLOURS.get(backend, "#c44e52"))
    return names, ratios, colours


def plot_report(report: Report, path: Path) -> None:
    """Left: after/before ratios of MACs, parameters, latency; right: channels kept per group."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(1, 2))
    names, ratios, colours = _ratios(report)
    bars = left.bar(names, ratios, color=colours)
    left.bar_label(bars, fmt="%.2f")
    left.axhline(1.0, color="grey", linewidth=0.8)
    left.set_ylabel("after / before (latency: lower is faster)")
    left.tick_params(axis="x", labelsize=7)
    before, after = report.top1("before"), report.top1("after")
    subtitle = f", top-1 {before or 0:.2f} -> {after:.2f}%" if after is not None else ""
    left.set_title(f"{report.pruning.method}{subtitle}", fontsize=10)
    channels = report.pruning.channels
    if channels:
        roots = list(channels)
        positions = range(len(roots))
        before_widths = [channels[root]["before"] for root in roots]
        after_widths = [channels[root]["after"] for root in roots]
        right.bar(positions, before_widths, color="#cccccc", label="before")
        right.bar(positions, after_widths, color=COST_COLOUR, label="after")
        right.set_xticks(list(positions), roots, rotation=90, fontsize=6)
        right.set_ylabel("channels")
        right.legend()
        right.set_title("channels per group", fontsize=10)
    else:
        right.set_axis_off()
    figure.suptitle(f"{report.settings.model}: pruned with {report.pruning.method}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
