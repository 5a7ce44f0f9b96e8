"""``report.md``: a run's before/after figures and the settings that produced them, for people."""

from __future__ import annotations

from typing import Any

from secateurs.measurement.machine import describe
from secateurs.report.schema import Report


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value / scale:.{digits}f}"


def _target(report: Report) -> str:
    pruning = report.pruning
    if pruning.target_ratio is None:
        ratios = pruning.layer_ratios or pruning.method_params.get("layer_sparsity") or {}
        listed = ", ".join(f"{k}={v:g}" for k, v in ratios.items())
        if ratios:
            return f"per-layer ratios {listed}"
        sparsity = pruning.method_params.get("sparsity")
        return f"weight sparsity {sparsity:g} per layer" if sparsity is not None else "none"
    return f"{pruning.target_kind} ratio {pruning.target_ratio:g}"


def _rows(report: Report) -> list[tuple[str, Any, Any, Any]]:
    middle = "masked" if report.settings.kind != "prune" else "oneshot"
    rows: list[tuple[str, Any, Any, Any]] = []
    for name, field in (("top-1 (%)", "top1"), ("top-5 (%)", "top5")):
        values = [getattr(report.accuracy.get(s), field, None) for s in ("before", middle, "after")]
        rows.append((name, *values))
    rows.append(("MACs (M)", report.cost_before.macs / 1e6, None, report.cost_after.macs / 1e6))
    rows.append(
        ("parameters (K)", report.cost_before.params / 1e3, None, report.cost_after.params / 1e3)
    )
    return rows


def _summary(report: Report) -> str:
    settings, pruning = report.settings, report.pruning
    if settings.kind == "prune":
        training = (
            f"Fine-tuning: {settings.training_epochs} epochs{_distill_note(report)}. "
            f"Pruning took {settings.pruning_seconds:.1f} s.{_recalibration_note(report)}"
        )
    else:
        training = (
            f"Trained with {settings.kind} for {settings.training_epochs} epochs "
            f"({settings.training_seconds:.0f} s), then compacted.{_executed_note(report)}"
        )
    return (
        f"Target: {_target(report)}; achieved {pruning.target_kind} ratio "
        f"{pruning.achieved_ratio:.4f}{_floor_note(report)}. Selection: {pruning.selection}. "
        f"{training}"
    )


def _floor_note(report: Report) -> str:
    """A latency target's measured floor: the thinnest model the floor allows."""
    floor = report.pruning.details.get("latency_floor")
    if not floor:
        return ""
    return f" (the thinnest model the floor allows measures {floor['ratio']:.3f})"


def markdown(report: Report) -> str:
    """A table of the before/after figures and the settings that produced them."""
    middle = "after pruning" if report.settings.kind == "prune" else "masked"
    final = "after fine-tuning" if report.settings.kind == "prune" else "compacted"
    lines = [
        f"# Pruning report: {report.settings.model} with {report.pruning.method}",
        "",
        *([f"**{slower_note(report)}**", ""] if report.slower else []),
        _summary(report) + _channel_floor_note(report),
        "",
        f"| measure | before | {middle} | {final} |",
        "|---|---:|---:|---:|",
    ]
    for name, before, oneshot, after in _rows(report):
        lines.append(f"| {name} | {_fmt(before)} | {_fmt(oneshot)} | {_fmt(after)} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines.append(f"| MACs reduction | {report.macs_reduction:.2f}x |")
    lines += ["", *latency_table(report)]
    lines += certificate_table(report.pruning.certificate)
    lines += protected_list(report.pruning.protected)
    return "\n".join(lines)


def slower_note(report: Report) -> str:
    """``Slower than the unpruned model: onnxruntime batch 64 at 0.79x.`` (every timing whose
    speed-up is under 1), or "" when none is."""
    slower = report.slower
    if not slower:
        return ""
    listed = ", ".join(f"{backend} batch {batch} at {speedup:.2f}x" for backend, batch, speedup
                       in slower)  # fmt: skip
    return f"Slower than the unpruned model: {listed}."


def _channel_floor_note(report: Report) -> str:
    """The channel floor the allocation kept to (pruning.details["floor"]), when recorded."""
    floor = report.pruning.details.get("floor")
    if not floor:
        return ""
    return (
        f" Channel floor: {floor['fraction']:g} of each group, {floor['ends_fraction']:g} of the "
        f"stem and the classifier's input, at least {floor['min_channels']} channels."
    )


def machine_note(report: Report) -> str:
    """The machine the timings were taken on, in one line ("" for a report that has none)."""
    machine = report.settings.machine
    return "" if machine is None else describe(vars(machine))


def protected_list(rows: list[dict[str, str]]) -> list[str]:
    """The channel groups kept whole because the dependency graph cannot follow them."""
    if not rows:
        return []
    lines = ["", f"Kept whole ({len(rows)} channel groups the graph cannot follow):", ""]
    return lines + [f"- `{row['root']}`: {row['reason']}" for row in rows]


def timing_note(report: Report) -> str:
    """Where, at which batch sizes and on how many threads the report's timings were taken."""
    backends = " and ".join(report.latency) or "no backend"
    batches = sorted({int(b) for rows in report.latency.values() for b in rows})
    repeats = report.settings.latency_repeats
    rounds = f", median of {repeats} interleaved rounds" if repeats else ", interleaved rounds"
    return (
        f"Timed in {backends} at batch {' and '.join(map(str, batches)) or '-'}, "
        f"{report.settings.latency_threads} threads{rounds} (before, after, before, ...; each "
        "timed run right after an untimed run of the same model, as a deployed model serving "
        "request after request)."
    )


def latency_table(report: Report) -> list[str]:
    """One row per batch size, each backend's before and after milliseconds beside the speed-up
    and realisation computed from those same medians (one measurement per cell group)."""
    if not report.latency:
        return ["Latency: not timed.", ""]
    backends = list(report.latency)
    header = "| batch |" + "".join(
        f" {b} before (ms) | {b} after (ms) | {b} speed-up | {b} realisation |" for b in backends
    )
    lines = [
        "## Latency",
        "",
        timing_note(report) + " Speed-up = median before / median after of the same rounds; "
        "realisation = speed-up / MACs reduction.",
        "",
        header,
        "|---:|" + "---:|---:|---:|---:|" * len(backends),
    ]
    batches = sorted({b for rows in report.latency.values() for b in rows}, key=int)
    for batch in batches:
        cells = [batch]
        for backend in backends:
            entry = report.latency[backend].get(batch)
            if entry is None:
                cells += ["-"] * 4
                continue
            cells += [
                f"{entry.before_ms:.3f}",
                f"{entry.after_ms:.3f}",
                f"{entry.speedup:.2f}x",
                f"{entry.realisation:.2f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    machine = machine_note(report)
    return [*lines, "", *([machine, ""] if machine else [])]


def _executed_note(report: Report) -> str:
    """Where the cost counts only the non-zero weights (sparse layers kept dense to run), what
    the saved model really executes."""
    executed = report.pruning.details.get("executed_macs")
    if not executed or executed == report.cost_after.macs:
        return ""
    return (
        f" MACs after: of the non-zero weights (what a sparse kernel computes); the model as "
        f"saved executes {_fmt(executed, 1e6)} M (its sparse layers run dense)."
    )


def _distill_note(report: Report) -> str:
    weight = report.settings.distill_weight
    if not weight or not report.settings.training_epochs:
        return ""
    return f", distilled from the unpruned model (weight {weight:g} on its soft targets)"


def _recalibration_note(report: Report) -> str:
    batches = report.settings.bn_recalibration_batches
    if not batches:
        return ""
    return (
        f" BatchNorm statistics re-estimated on {batches} batches after pruning (top-1 right "
        f"after pruning without that: {_fmt(report.top1('oneshot_uncalibrated'))}%)."
    )


def certificate_table(rows: list[dict[str, Any]]) -> list[str]:
    """PFP's per-layer certificate: the guarantee's parameters and the error measured on held-out
    images next to its bound (randomized selection only), with what the bound is worth."""
    if not rows:
        return []
    from secateurs.report.certificate import violations

    first = rows[0]
    lines = [
        "## Certificate",
        "",
        f"PFP: |S| = {first.get('sample_images')} images for the sensitivities, "
        f"{first.get('held_out_images')} held-out images for the measured error. Error: max over "
        "images, units and positions of |z_hat - z| / (|W| * |a|), the quantity the bound eps "
        "limits; L2: ||z_hat - z|| / ||z||. " + _bound_note(rows, violations(rows)),
        "",
        "| step | group | channels | kept | eps | delta | m_l | k_l | S_l | error | L2 error "
        "| bound |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.get('step', 1)} | {row['group']} | {row['channels']} | {row['kept']} | "
            f"{row['eps']:.4g} | {row['delta']:.0e} | {float(row['m']):.4g} | {row['k']} | "
            f"{row['S_l']:.4g} | {_fmt(row.get('error_max'), digits=4)} | "
            f"{_fmt(row.get('error_l2'), digits=4)} | {_fmt(row.get('bound'), digits=4)} |"
        )
    lines.append("")
    return lines


def _bound_note(rows: list[dict[str, Any]], violated: list[str]) -> str:
    """What the bound column means for these rows, in one sentence or two."""
    if violated:
        return f"**The bound is VIOLATED in group(s) {', '.join(violated)}.**"
    if all(row.get("bound") is None for row in rows):
        return (
            "Deterministic selection (top-k_l): the theorem gives no bound for it, so none is "
            "shown."
        )
    if any(row.get("vacuous") for row in rows):
        return (
            "eps >= 1: the bound holds by construction (the error is at most 1) and promises "
            "nothing."
        )
    return "Every measured error is within its bound."
