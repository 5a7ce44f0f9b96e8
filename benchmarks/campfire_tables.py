"""The Markdown tables of docs/results/campfire.md, generated from the runs' report.json (and
measured.json, written by campfire_measure.py) files: nothing is typed by hand."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from secateurs.report import Report, read_report


def _label(name: str) -> str:
    """The run's configuration without its seed suffix."""
    return name.split("-seed")[0]


def _weight_sparsity(report: Report) -> str:
    layers = report.pruning.details.get("campfire", {}).get("layer_sparsity")
    if not layers:
        return "-"
    return f"{statistics.mean(layers.values()):.3f}"


def _measured(run: Path) -> dict:
    path = run / "measured.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _speed(measured: dict, backend: str) -> str:
    rows = measured.get("latency", {}).get(backend, {})
    return " / ".join(f"{rows[b]['speedup']:.2f}x" for b in ("1", "64") if b in rows) or "-"


def _robust(measured: dict, key: str) -> str:
    value = measured.get("robustness", {}).get(key)
    return "-" if value is None else f"{value:.1f}"


def summary(out: Path, names: list[str]) -> str:
    """One row per configuration: top-1 as mean (± std, seeds) and the first seed's other
    figures; robustness is top-1 (%) on the attacked draw of test images (measured.json)."""
    by_label: dict[str, list[tuple[str, Report]]] = {}
    for name in names:
        path = out / name / "report.json"
        if path.exists():
            by_label.setdefault(_label(name), []).append((name, read_report(path)))
    lines = [
        "| run | seeds | top-1 after (mean ± std) | before | mean layer sparsity "
        "| MACs kept (non-zeros) | params kept | clean (attacked draw) | FGSM 2/255 | PGD 2/255 "
        "| PGD 8/255 "
        "| speed-up eager b1 / b64 | speed-up onnxruntime b1 / b64 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    dense = _measured(out / "dense")
    if dense:
        lines.append(
            f"| dense (the unpruned model) | - | - | - | 0 | 1.000 | 1.000 "
            f"| {_robust(dense, 'clean')} | {_robust(dense, 'fgsm@2')} "
            f"| {_robust(dense, 'pgd@2')} | {_robust(dense, 'pgd@8')} "
            "| 1 | 1 |"
        )
    for label, runs in by_label.items():
        tops = [r.top1("after") for _, r in runs]
        spread = f" ± {statistics.stdev(tops):.2f}" if len(tops) > 1 else ""
        first_name, first = runs[0]
        measured = _measured(out / first_name)
        lines.append(
            f"| {label} | {len(runs)} | {statistics.mean(tops):.2f}{spread} "
            f"| {first.top1('before'):.2f} | {_weight_sparsity(first)} | {first.macs_kept:.3f} "
            f"| {first.params_kept:.3f} | {_robust(measured, 'clean')} "
            f"| {_robust(measured, 'fgsm@2')} "
            f"| {_robust(measured, 'pgd@2')} | {_robust(measured, 'pgd@8')} "
            f"| {_speed(measured, 'eager')} | {_speed(measured, 'onnxruntime')} |"
        )
    csr = csr_summary(out, names)
    return "\n".join(lines) + (f"\n\n{csr}" if csr else "")


def csr_summary(out: Path, names: list[str]) -> str:
    """Per run with a timed CSR path: the layers' eager speed-ups over dense, by batch size."""
    lines = [
        "| run | layers | CSR / dense, batch 1: min / median / max "
        "| batch 64: min / median / max |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        layers = _measured(out / name).get("csr_path")
        if not layers:
            continue
        cells = []
        for batch in ("1", "64"):
            ratios = sorted(layer["csr_speedup_eager"][batch] for layer in layers)
            cells.append(f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f}")
        lines.append(f"| {name} | {len(layers)} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) if len(lines) > 2 else ""
