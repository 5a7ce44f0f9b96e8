"""Probe: timm CNNs at random initialisation, each pruned with secateurs' Python API to a MACs
target; pruned, protected (some groups kept whole, the rest pruned) or refused, with the reason.

Every model runs in its own child process under a time limit, so a hang is recorded as one, not
waited for. Per model: outcome, MACs reached (after / before), masked against pruned output
(relative), seconds of ``secateurs.prune`` (copy, structure checks, trial removal, scoring,
allocation, surgery), the child's peak memory, the protected structures, the error. A target
below what can be reached with the structures kept whole is tried again just above that floor.
``--torch-pruning`` also times Torch-Pruning's own ``MagnitudePruner`` on the same model and
target (time it only on an idle machine).

    OMP_NUM_THREADS=1 python benchmarks/zoo.py --size 64 > zoo.jsonl
    python benchmarks/zoo.py --table zoo.jsonl
    OMP_NUM_THREADS=1 python benchmarks/zoo.py --size 224 --limit 600 --torch-pruning --summary
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import resource
import subprocess
import sys
import time
from typing import Any

FAMILIES = [
    "resnet18",
    "resnet50d",
    "resnext26ts",
    "seresnet18",
    "regnetx_002",
    "regnety_002",
    "mobilenetv2_050",
    "mobilenetv3_small_050",
    "efficientnet_b0",
    "ghostnet_050",
    "cspresnet50",
    "cspdarknet53",
    "cs3darknet_s",
    "dpn68",
    "densenet121",
    "dla34",
    "hrnet_w18_small",
    "rexnet_100",
    "convnext_atto",
    "repvgg_a0",
    "mixnet_s",
    "tinynet_e",
    "hardcorenas_a",
    "fbnetc_100",
    "inception_v3",
    "xception41",
    "res2net50_14w_8s",
    "selecsls42",
    "vgg11_bn",
    "lcnet_050",
    "mnasnet_050",
    "skresnet18",
    "gernet_s",
    "ese_vovnet19b_dw",
    "darknet17",
    "resnest14d",
    "regnetz_005",
    "mobileone_s0",
    "hgnetv2_b0",
    "repvit_m0_9",
    "nf_resnet26",
    "mobilenetv4_conv_small",
]


TP_STEPS = 100  # Torch-Pruning's iterative steps towards 90% of channels: ~0.9% a step


def _relative(a: Any, b: Any) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def _randomise_batchnorm(model: Any) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
            size = module.num_features
            if module.running_mean is not None:
                module.running_mean.copy_(torch.rand(size, generator=generator) * 2 - 1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(size, generator=generator) - 0.5)


def probe_secateurs(name: str, size: int, target: float) -> dict[str, Any]:
    """Prune ``name`` with the Python API; check masked == pruned and the MACs reached."""
    import timm
    import torch

    import secateurs
    from secateurs.errors import SecateursError
    from secateurs.measurement import count_cost
    from secateurs.pruning import ChannelGraph, PruningPlan, apply_masks

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    _randomise_batchnorm(model)
    input_size = (3, size, size)
    row: dict[str, Any] = {"model": name, "size": size, "target": target}
    example, started = torch.zeros(1, *input_size), time.perf_counter()
    try:  # the Python API: a pruned copy (the copy is timed too)
        pruned = secateurs.prune(model, method="l1", example_input=example, target_macs=target)
    except SecateursError as error:
        return {**row, "outcome": "refused", "error": str(error),
                "seconds": time.perf_counter() - started}  # fmt: skip
    row["seconds"] = time.perf_counter() - started
    record, pruned_model = pruned.record, pruned.model
    row["protected"] = record.oneshot.protected
    row["outcome"] = "protected" if row["protected"] else "pruned"
    row["macs"] = pruned.achieved
    plan = PruningPlan.from_json(record.oneshot.plans[0])
    masked = copy.deepcopy(model).eval()
    apply_masks(ChannelGraph(masked, input_size), plan)
    images = torch.randn(2, *input_size)
    with torch.no_grad():
        expected, got = masked(images), pruned_model(images)
    row["shape_kept"] = tuple(got.shape) == (2, 10)
    row["difference"] = _relative(expected, got)
    row["macs_checked"] = (
        count_cost(pruned_model, input_size)["macs"] / (count_cost(model, input_size)["macs"])
    )
    return row


def probe_with_floor(name: str, size: int, target: float) -> dict[str, Any]:
    """:func:`probe_secateurs`; when the target is below what can be reached (structures kept
    whole), once more just above that floor."""
    row = probe_secateurs(name, size, target)
    floor = re.search(r"leaves (\d\.\d+)", row.get("error", ""))
    if row["outcome"] != "refused" or not floor or float(floor.group(1)) + 0.02 >= 1:
        return row
    retried = probe_secateurs(name, size, round(float(floor.group(1)) + 0.02, 3))
    retried["floor"] = row["error"]
    return retried


def probe_torch_pruning(name: str, size: int, target: float) -> dict[str, Any]:
    """Torch-Pruning's own ``BasePruner`` (``MagnitudePruner``, L1 magnitude, global ranking, the
    classifier ignored), stepped until the MACs reach the target: its time and outcome."""
    import timm
    import torch
    import torch_pruning as tp

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    example = torch.zeros(1, 3, size, size)
    base, _ = tp.utils.count_ops_and_params(model, example)
    started, macs = time.perf_counter(), base
    try:
        pruner = tp.pruner.MagnitudePruner(
            model,
            example,
            importance=tp.importance.MagnitudeImportance(p=1),
            global_pruning=True,
            pruning_ratio=0.9,
            iterative_steps=TP_STEPS,
            ignored_layers=[model.get_classifier()],
        )
        for _ in range(TP_STEPS):  # small steps until the MACs reach the target
            pruner.step()
            macs, _ = tp.utils.count_ops_and_params(model, example)
            if macs / base <= target:
                break
        with torch.no_grad():
            shape = tuple(model(example).shape)
    except Exception as error:  # recorded, not raised: this is the baseline's behaviour
        failure = f"{type(error).__name__}: {str(error)[:200]}"
        return {"tp_outcome": "failed", "tp_error": failure,
                "tp_seconds": time.perf_counter() - started}  # fmt: skip
    outcome = "pruned" if shape == (1, 10) else f"output shape {shape}"
    return {"tp_outcome": outcome, "tp_macs": macs / base,
            "tp_seconds": time.perf_counter() - started}  # fmt: skip


def run_child(name: str, args: argparse.Namespace, which: str) -> dict[str, Any]:
    """One probe in a child process; a child over the time limit is a hang."""
    command = [sys.executable, __file__, "--one", name, "--size", str(args.size),
               "--target", str(args.target), "--which", which]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.limit)
    except subprocess.TimeoutExpired:
        prefix = "" if which == "secateurs" else "tp_"
        return {"model": name, f"{prefix}outcome": "hang",
                f"{prefix}error": f"no answer in {args.limit:g} s"}  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        prefix = "" if which == "secateurs" else "tp_"
        error = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"model": name, f"{prefix}outcome": "crashed", f"{prefix}error": error}
    return json.loads(lines[-1])


def summary(rows: list[dict[str, Any]]) -> str:
    """The functional table as Markdown (with Torch-Pruning's columns when it was run)."""
    with_tp = any("tp_outcome" in row for row in rows)
    head = "| model | outcome | target | MACs kept | masked vs pruned | s | MB |"
    head += " TP | TP MACs | TP s | TP MB |" if with_tp else ""
    lines = [head + " protected / refused: why |", "|" + "---|" * head.count("|")]
    for row in rows:
        why = row.get("error") or _kinds(row.get("protected", []))
        cells = [row["model"], row.get("outcome", ""), row.get("target", ""), _number(row, "macs"),
                 _number(row, "difference", ".1e"), _number(row, "seconds", ".1f"),
                 _number(row, "peak_mb", ".0f")]  # fmt: skip
        if with_tp:
            cells += [row.get("tp_outcome", ""), _number(row, "tp_macs"),
                      _number(row, "tp_seconds", ".1f"),
                      _number(row, "tp_peak_mb", ".0f")]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + f" | {why[:300]} |")
    return "\n".join(lines)


KINDS = ("grouped convolution", "channel split", "channel slice", "reshape regroups",
         "of the group's", "concatenation", "maps channel", "trial removal",
         "could not follow")  # fmt: skip


def _kinds(protected: list[dict[str, str]]) -> str:
    """The protected groups counted by kind of structure ("channel split x4")."""
    counts: dict[str, int] = {}
    for row in protected:
        kind = next((k for k in KINDS if k in row["reason"]), row["reason"][:60])
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{kind} x{count}" for kind, count in counts.items())


def _number(row: dict[str, Any], key: str, spec: str = ".3f") -> str:
    return format(row[key], spec) if isinstance(row.get(key), (int, float)) else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=FAMILIES)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per model")
    parser.add_argument("--torch-pruning", action="store_true")
    parser.add_argument("--summary", action="store_true", help="print a Markdown table at the end")
    parser.add_argument("--table", help="only print the Markdown table of this JSON-lines file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--which", default="secateurs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        with open(args.table) as lines:
            print(summary([json.loads(line) for line in lines if line.startswith("{")]))
        return
    if args.one:
        probe = probe_with_floor if args.which == "secateurs" else probe_torch_pruning
        row = probe(args.one, args.size, args.target)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
        row["peak_mb" if args.which == "secateurs" else "tp_peak_mb"] = round(peak, 1)
        print(json.dumps(row))
        return
    rows = []
    for name in args.models:
        row = run_child(name, args, "secateurs")
        if args.torch_pruning:
            row.update(run_child(name, args, "tp"))
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.summary:
        print(summary(rows))


if __name__ == "__main__":
    main()
