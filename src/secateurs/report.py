"""The before/after record of a pruning run: ``report.json`` for machines, ``report.md`` for
people, ``report.png`` for people who would rather look than read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _target(report: dict[str, Any]) -> str:
    if report.get("target_ratio") is None:
        ratios = report.get("layer_ratios") or {}
        listed = ", ".join(f"{k}={v:g}" for k, v in ratios.items())
        return f"per-layer ratios {listed}" if ratios else "none"
    return f"{report['target_kind']} ratio {report['target_ratio']:g}"


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value / scale:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """A table of the before/after figures and the settings that produced them."""
    stages = ("before", "oneshot", "after")
    rows = [
        ("top-1 (%)", *(report.get(f"top1_{stage}") for stage in stages)),
        ("top-5 (%)", *(report.get(f"top5_{stage}") for stage in stages)),
        ("MACs (M)", report["macs_before"] / 1e6, None, report["macs_after"] / 1e6),
        ("parameters (K)", report["params_before"] / 1e3, None, report["params_after"] / 1e3),
    ]
    for batch, entry in report.get("latency", {}).items():
        rows.append((f"latency, batch {batch} (ms)", entry["before_ms"], None, entry["after_ms"]))
    lines = [
        f"# Pruning report: {report['model']} with {report['method']}",
        "",
        f"Target: {_target(report)}; achieved {report['target_kind']} ratio "
        f"{report['achieved_ratio']:.4f}. Selection: {report.get('selection', 'deterministic')}. "
        f"Fine-tuning: {report['finetune_epochs']} epochs{_distill_note(report)}. "
        f"Pruning took {report['pruning_seconds']:.1f} s.{_recalibration_note(report)}",
        "",
        "| measure | before | after pruning | after fine-tuning |",
        "|---|---:|---:|---:|",
    ]
    for name, before, oneshot, after in rows:
        lines.append(f"| {name} | {_fmt(before)} | {_fmt(oneshot)} | {_fmt(after)} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines.append(f"| MACs reduction | {report['macs_before'] / report['macs_after']:.2f}x |")
    for batch, entry in report.get("latency", {}).items():
        lines.append(f"| speed-up, batch {batch} | {entry['speedup']:.2f}x |")
        lines.append(f"| latency realisation, batch {batch} | {entry['realisation']:.2f} |")
    lines += [
        "",
        "Latency: median of interleaved runs (before, after, before, ...), "
        f"{report.get('latency_threads', '?')} threads. Realisation = speed-up / MACs reduction.",
        "",
    ]
    lines += certificate_table(report.get("certificate") or [])
    return "\n".join(lines)


def _distill_note(report: dict[str, Any]) -> str:
    weight = report.get("distill_weight")
    if not weight or not report.get("finetune_epochs"):
        return ""
    return f", distilled from the unpruned model (weight {weight:g} on its soft targets)"


def _recalibration_note(report: dict[str, Any]) -> str:
    batches = report.get("bn_recalibration_batches")
    if not batches:
        return ""
    return (
        f" BatchNorm statistics re-estimated on {batches} batches after pruning (top-1 right "
        f"after pruning without that: {_fmt(report.get('top1_oneshot_uncalibrated'))}%)."
    )


def certificate_table(rows: list[dict[str, Any]]) -> list[str]:
    """PFP's per-layer certificate: the guarantee's parameters and the error measured on held-out
    images next to its bound eps."""
    if not rows:
        return []
    first = rows[0]
    lines = [
        "## Certificate",
        "",
        f"PFP: |S| = {first.get('sample_images')} images for the sensitivities, "
        f"{first.get('held_out_images')} held-out images for the measured error. Error: max over "
        "images, units and positions of |z_hat - z| / (|W| * |a|), the quantity the bound eps "
        "limits; L2: ||z_hat - z|| / ||z||.",
        "",
        "| step | group | channels | kept | eps | delta | m_l | k_l | S_l | error | L2 error |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.get('step', 1)} | {row['group']} | {row['channels']} | {row['kept']} | "
            f"{row['eps']:.4g} | {row['delta']:.0e} | {float(row['m']):.4g} | {row['k']} | "
            f"{row['S_l']:.4g} | {_fmt(row.get('error_max'), digits=4)} | "
            f"{_fmt(row.get('error_l2'), digits=4)} |"
        )
    lines.append("")
    return lines


def write_report(report: dict[str, Any], directory: Path) -> None:
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (directory / "report.md").write_text(markdown(report))
    from secateurs.plot import plot_report

    plot_report(report, directory / "report.png")
