"""The timing, int8 and table phases of benchmarks/latency_targets.py: every figure comes from the
runs' report.json files and the timings written here, so the tables cannot drift from the runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from secateurs import api
from secateurs.measurement import LatencySettings, compare
from secateurs.measurement.export import quantize_int8, write_checked
from secateurs.measurement.onnx_runtime import compare_graphs, compare_onnx, onnx_top1
from secateurs.report import Report, read_report
from secateurs.store import load_model
from tables import spread

log = logging.getLogger("benchmark")


def runs_by_model(out: Path) -> dict[str, list[tuple[str, Report]]]:
    """``{base model directory: [(run name, report), ...]}`` of every finished run."""
    found: dict[str, list[tuple[str, Report]]] = {}
    for path in sorted(out.glob("*/report.json")):
        report = read_report(path)
        found.setdefault(report.settings.model_dir, []).append((path.parent.name, report))
    return found


def time_all(out: Path, repeats: int) -> None:
    """Dense + every pruned model of each base model, interleaved, eager and onnxruntime."""
    result = {}
    settings = LatencySettings((1, 64), threads=2, repeats=repeats)
    for model_dir, runs in runs_by_model(out).items():
        dense, manifest = load_model(model_dir)
        names = ["dense", *(name for name, _ in runs)]
        models = [dense, *(load_model(out / name)[0] for name, _ in runs)]
        log.info("timing %s and %d pruned models", model_dir, len(runs))
        timed = {"eager": compare(models, manifest.input_size, settings),
                 "onnxruntime": compare_onnx(models, manifest.input_size, settings)}  # fmt: skip
        result[model_dir] = {
            backend: {
                name: {str(b): rows[i]["median"] for b, rows in by_batch.items()}
                for i, name in enumerate(names)
            }
            for backend, by_batch in timed.items()
        }
    (out / "timing.json").write_text(json.dumps(result, indent=1) + "\n")


def int8_all(out: Path, data_root: str, repeats: int) -> None:
    """The dense model and its latency-targeted prunes, fp32 and int8, scored and timed."""
    result = {}
    folder = out / "int8"
    for model_dir, runs in runs_by_model(out).items():
        dense, manifest = load_model(model_dir)
        data = api.load_data(data_root, manifest=manifest)
        check = next(iter(data.batches(data.test.subset(64, 0))))[0]
        calibration = data.sample(512, 32, 0)
        names = ["dense", *(name for name, _ in runs if "-latency-" in name)]
        graphs, rows = [], []
        for name in names:
            model = dense if name == "dense" else load_model(out / name)[0]
            fp32 = write_checked(model, manifest.input_size, check, folder / f"{name}.onnx").path
            int8 = fp32.with_name(f"{name}.int8.onnx")
            quantize_int8(fp32, int8, (images.numpy() for images, _ in calibration))
            for precision, path in (("fp32", fp32), ("int8", int8)):
                graphs.append(path.read_bytes())
                rows.append({"name": name, "precision": precision})
        for row, graph in zip(rows, graphs, strict=True):
            row["top1"] = onnx_top1(graph, data)
        timed = compare_graphs(graphs, manifest.input_size,
                               LatencySettings((1, 64), threads=2, repeats=repeats))  # fmt: skip
        for i, row in enumerate(rows):
            row["ms"] = {str(b): by_batch[i]["median"] for b, by_batch in timed.items()}
        result[model_dir] = rows
    (out / "int8.json").write_text(json.dumps(result, indent=1) + "\n")


def _run_label(name: str) -> tuple[str, str]:
    """``resnet20-cifar10-R0.5-l1-round16-s0`` -> (``R0.5``, ``l1-round16``)."""
    stem = name.rsplit("-s", 1)[0]
    target = next(p for p in stem.split("-") if p.startswith("R"))
    return target, stem.split(f"{target}-", 1)[1]


def tables(out: Path) -> str:
    timing = json.loads((out / "timing.json").read_text()) if (out / "timing.json").exists() else {}
    lines = []
    for model_dir, runs in runs_by_model(out).items():
        times = timing.get(model_dir, {})
        lines += [f"### {Path(model_dir).name}", "",
                  "| target | run | seeds | MACs kept | params kept | top-1 after FT | "
                  "onnxruntime b1 | onnxruntime b64 | eager b1 | eager b64 |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        grouped: dict[tuple[str, str], list[tuple[str, Report]]] = {}
        for name, report in runs:
            grouped.setdefault(_run_label(name), []).append((name, report))
        for (target, run), members in sorted(grouped.items()):
            reports = [r for _, r in members]
            top1 = [r.top1("after") for r in reports if r.top1("after") is not None]
            cells = [target, run, str(len(members)),
                     spread([r.cost_after.macs / r.cost_before.macs for r in reports], 3),
                     spread([r.params_kept for r in reports], 3),
                     spread(top1)]  # fmt: skip
            for backend in ("onnxruntime", "eager"):
                for batch in ("1", "64"):
                    dense = times.get(backend, {}).get("dense", {}).get(batch)
                    speedups = [dense / times[backend][n][batch] for n, _ in members
                                if dense and n in times.get(backend, {})]  # fmt: skip
                    cells.append(spread(speedups) + "x" if speedups else "-")
            lines.append("| " + " | ".join(cells) + " |")
        if reports:
            lines += ["", f"Unpruned top-1: {reports[0].top1('before'):.2f}%.", ""]
    targets = out / "macs-targets.json"
    if targets.exists():
        missed = [k for k, v in json.loads(targets.read_text()).items() if v is None]
        if missed:
            lines.append("Could not reach the latency target at any MACs target: "
                         + ", ".join(missed) + ".")  # fmt: skip
    return "\n".join(lines) + "\n" + int8_table(out)


def int8_table(out: Path) -> str:
    path = out / "int8.json"
    if not path.exists():
        return ""
    lines = ["", "| model | precision | top-1 | speed-up b1 vs dense fp32 | speed-up b64 |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    for rows in json.loads(path.read_text()).values():
        dense = next(r for r in rows if r["name"] == "dense" and r["precision"] == "fp32")
        for row in rows:
            speed = [dense["ms"][b] / row["ms"][b] for b in ("1", "64")]
            lines.append(f"| {row['name']} | {row['precision']} | {row['top1']:.2f} | "
                         f"{speed[0]:.2f}x | {speed[1]:.2f}x |")  # fmt: skip
    return "\n".join(lines) + "\n"
