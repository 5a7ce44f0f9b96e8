"""The results tables of docs/results, generated from the runs' report.json files, so a table
cannot drift from the runs it stands for.

Runs that share a method, its settings (selection, strategy, rounding, granularity) and a target
are one row: with several seeds the row gives mean +- standard deviation (sample, n - 1) and the
seed count, so a difference between rows is read against the spread within them. Every figure
comes from the reports; nothing is re-measured.

    .venv/bin/python benchmarks/tables.py runs/bench-0.5/*/ > table.md
    .venv/bin/python benchmarks/tables.py --latency eager:64 runs/bench-0.5/*/
    .venv/bin/python benchmarks/tables.py --change --relabel "runs/old=pfp, old ranking" \
        runs/old/*/ runs/bench-0.5/pfp*/

``--change`` adds top-1 after fine-tuning minus the unpruned model's; ``--relabel`` gives the
runs under a path their own rows (runs of changed code whose reports look alike).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from secateurs.report import Report, read_report


def label(report: Report) -> str:
    """What distinguishes a method's rows besides the seed: method, selection and settings."""
    pruning = report.pruning
    parts = [pruning.method]
    if pruning.method_params.get("budget") == "eps":  # PFP: one eps sizes every layer
        parts.append("eps budget")
    elif pruning.strategy:
        parts.append(pruning.strategy)
    if pruning.selection not in ("deterministic", ""):
        parts.append(pruning.selection)
    if str(pruning.round_to) != "1":
        parts.append(f"round to {pruning.round_to}")
    if pruning.granularity:
        parts.append(pruning.granularity)
    if pruning.steps > 1:
        parts.append(f"{pruning.steps} steps")
    return ", ".join(parts)


def spread(values: Sequence[float | None], digits: int = 2) -> str:
    """``mean +- sd`` of the values given (one value: itself; none: "-")."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    if len(present) == 1:
        return f"{present[0]:.{digits}f}"
    mean, sd = statistics.fmean(present), statistics.stdev(present)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def latency_speedup(report: Report, key: str | None) -> float | None:
    """The speed-up at ``backend:batch`` (e.g. ``eager:64``), or None when not timed."""
    if key is None:
        return None
    backend, _, batch = key.partition(":")
    figures = report.latency.get(backend, {}).get(batch)
    return None if figures is None else figures.speedup


def change(report: Report) -> float | None:
    """Top-1 after fine-tuning minus the unpruned model's, in points (None if either is missing)."""
    after, before = report.top1("after"), report.top1("before")
    return None if after is None or before is None else after - before


def rows(
    reports: Iterable[Report],
    latency: str | None = None,
    with_change: bool = False,
    labels: Sequence[str | None] | None = None,
) -> list[str]:
    """The markdown table of ``reports``, one row per (label, target), best mean first; with
    ``with_change``, a column of the change in top-1 from the unpruned model. ``labels``: one
    per report, None keeping the report's own (:func:`label`)."""
    groups: dict[tuple[str, float | None], list[Report]] = {}
    reports = list(reports)
    for report, given in zip(reports, labels or [None] * len(reports), strict=True):
        key = (given or label(report), report.pruning.target_ratio)
        groups.setdefault(key, []).append(report)

    def after(item: tuple[tuple[str, float | None], list[Report]]) -> float:
        values = [r.top1("after") for r in item[1] if r.top1("after") is not None]
        return -statistics.fmean(values) if values else 0.0

    header = "| method | target | seeds | MACs kept | params kept | top-1 one-shot "
    header += "| top-1 after FT |"
    line = "|---|---:|---|---:|---:|---:|---:|"
    if with_change:
        header += " change from unpruned |"
        line += "---:|"
    if latency:
        header += f" speed-up {latency} |"
        line += "---:|"
    table = [header, line]
    for (name, target), runs in sorted(groups.items(), key=after):
        seeds = ", ".join(str(r.settings.seed) for r in runs)
        kept = [r.cost_after.params / r.cost_before.params for r in runs]
        cells = [
            name,
            "-" if target is None else f"{target:g}",
            seeds,
            spread([r.cost_after.macs / r.cost_before.macs for r in runs], 3),
            spread(kept, 3),
            spread([r.top1("oneshot") for r in runs]),
            spread([r.top1("after") for r in runs]),
        ]
        if with_change:
            cells.append(spread([change(r) for r in runs]))
        if latency:
            cells.append(spread([latency_speedup(r, latency) for r in runs]))
        table.append("| " + " | ".join(cells) + " |")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or report.json files")
    parser.add_argument("--latency", metavar="BACKEND:BATCH", help="add a speed-up column")
    parser.add_argument(
        "--change", action="store_true", help="add top-1 after FT minus the unpruned model's"
    )
    parser.add_argument(
        "--relabel",
        action="append",
        default=[],
        metavar="PREFIX=LABEL",
        help="runs whose path starts with PREFIX get LABEL (code a report cannot tell apart)",
    )
    args = parser.parse_args(argv)
    unfinished = [p for p in args.runs if p.is_dir() and not (p / "report.json").exists()]
    if unfinished:  # a run still going, or interrupted: not a row yet
        names = ", ".join(str(p) for p in unfinished)
        print(f"left out, no report.json yet: {names}", file=sys.stderr)
    finished = [path for path in args.runs if path not in unfinished]
    if any("=" not in item for item in args.relabel):
        parser.error("--relabel takes PREFIX=LABEL")
    relabel = [item.split("=", 1) for item in args.relabel]
    labels = [
        next((name for prefix, name in relabel if str(path).startswith(prefix)), None)
        for path in finished
    ]
    reports = [read_report(path) for path in finished]
    print("\n".join(rows(reports, args.latency, args.change, labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
