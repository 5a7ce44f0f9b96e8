"""Plots: a pruning report as one figure (cost and speed before/after, channels per layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Left: after/before ratios of MACs, parameters, latency; right: channels kept per group."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(1, 2))
    names = ["MACs", "params"]
    ratios = [
        report["macs_after"] / report["macs_before"],
        report["params_after"] / report["params_before"],
    ]
    for batch, entry in report.get("latency", {}).items():
        names.append(f"latency\nbatch {batch}")
        ratios.append(entry["after_ms"] / entry["before_ms"])
    bars = left.bar(names, ratios, color=["#4c72b0"] * 2 + ["#dd8452"] * (len(names) - 2))
    left.bar_label(bars, fmt="%.2f")
    left.axhline(1.0, color="grey", linewidth=0.8)
    left.set_ylabel("after / before")
    accuracy = report.get("top1_after")
    subtitle = f", top-1 {report.get('top1_before', 0):.2f} -> {accuracy:.2f}%" if accuracy else ""
    left.set_title(f"{report['method']}{subtitle}", fontsize=10)
    channels = report.get("channels", {})
    if channels:
        roots = list(channels)
        before = [channels[root]["before"] for root in roots]
        after = [channels[root]["after"] for root in roots]
        positions = range(len(roots))
        right.bar(positions, before, color="#cccccc", label="before")
        right.bar(positions, after, color="#4c72b0", label="after")
        right.set_xticks(list(positions), roots, rotation=90, fontsize=6)
        right.set_ylabel("channels")
        right.legend()
        right.set_title("channels per group", fontsize=10)
    figure.suptitle(f"{report['model']}: pruned with {report['method']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
