"""Campfire's compute budget: a MACs target (or one weight sparsity, or a sparsity per layer)
turned into each layer's pruned count per structure, and MACs counted from non-zeros.

A weight of a convolution is used H_out x W_out times per image, a linear layer's once, so a
pruned weight saves that many MACs. A uniform sparsity s of the eligible layers' weights that
leaves ``target`` of the model's MACs is s = (1 - target) x total / eligible. Counts per
structure are whole numbers: each layer takes the floor or the ceiling of s x its structure
size, and the layers whose fractional parts are largest take the ceiling while that keeps the
total pruned MACs at or under what was asked (a window of 9 cannot prune 4.5)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.measurement.cost import count_cost
from secateurs.pruning.campfire.structures import structure_size
from secateurs.pruning.compaction.layers import input_layers, macs_per_weight

MAX_SPARSITY = 0.95  # of any one layer's weights


@dataclass
class LayerBudget:
    """One layer's end state: entries pruned per structure, for each granularity."""

    name: str
    pruned: dict[str, int]


def eligible_layers(
    model: nn.Module,
    input_size: Sequence[int],
    granularities: Sequence[str],
    exempt_ends: bool = True,
) -> dict[str, nn.Module]:
    """The layers the structures apply to: ungrouped convolutions (kernels larger than 1x1 for
    ``window``), linear layers for ``unstructured`` alone; with ``exempt_ends`` not the first
    convolution (it reads the image) nor the model's last layer (it writes the classes)."""
    first = input_layers(model, input_size) if exempt_ends else set()
    candidates = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    last = candidates[-1][1] if exempt_ends and candidates else None
    found = {}
    for name, module in candidates:
        if module in first or module is last:
            continue
        if isinstance(module, nn.Linear):
            if set(granularities) == {"unstructured"}:
                found[name] = module
            continue
        if module.groups != 1:
            continue
        if "window" in granularities and module.kernel_size[0] * module.kernel_size[1] < 2:
            continue
        found[name] = module
    return found


def _counts(
    layers: Mapping[str, nn.Module], granularities: Sequence[str], sparsity: Mapping[str, float]
) -> dict[str, dict[str, float]]:
    """Continuous pruned count per structure: each granularity keeps (1 - s)^(1/n)."""
    share = {}
    for name, module in layers.items():
        s = sparsity[name]
        if not 0 <= s <= MAX_SPARSITY:
            raise SecateursError(f"{name}: a sparsity of {s:g} is outside [0, {MAX_SPARSITY}]")
        kept = (1 - s) ** (1 / len(granularities))
        shape = tuple(module.weight.shape)
        share[name] = {g: (1 - kept) * structure_size(shape, g) for g in granularities}
    return share


def _rounded(
    continuous: Mapping[str, dict[str, float]], saving: Mapping[str, float]
) -> dict[str, dict[str, int]]:
    """Floors, then ceilings by largest fractional part while the saving stays at or under the
    continuous one (one granularity: exact in aggregate up to one structure of one layer)."""
    counts = {n: {g: math.floor(c) for g, c in by.items()} for n, by in continuous.items()}
    wanted = sum(saving[n] * sum(by.values()) for n, by in continuous.items())
    have = sum(saving[n] * sum(by.values()) for n, by in counts.items())
    candidates = sorted(
        ((c - math.floor(c), n, g) for n, by in continuous.items() for g, c in by.items()),
        reverse=True,
    )
    for fraction, name, granularity in candidates:
        if fraction > 0 and have + saving[name] <= wanted + 1e-9:
            counts[name][granularity] += 1
            have += saving[name]
    return counts


def plan_budgets(
    model: nn.Module,
    input_size: Sequence[int],
    granularities: Sequence[str],
    *,
    target_macs: float | None = None,
    sparsity: float | None = None,
    layer_sparsity: Mapping[str, float] | None = None,
    exempt_ends: bool = True,
) -> list[LayerBudget]:
    """Each eligible layer's pruned counts for one budget: ``layer_sparsity`` (by layer name;
    others dense), else ``sparsity`` (every eligible layer), else ``target_macs`` (kept share of
    the model's MACs)."""
    layers = eligible_layers(model, input_size, granularities, exempt_ends)
    if not layers:
        raise SecateursError(f"no layer of the model takes {'+'.join(granularities)} sparsity")
    uses = macs_per_weight(model, input_size)
    if layer_sparsity is not None:
        unknown = sorted(set(layer_sparsity) - set(layers))
        if unknown:
            raise SecateursError(f"not a layer Campfire prunes here: {', '.join(unknown)}")
        per_layer = {name: float(layer_sparsity.get(name, 0.0)) for name in layers}
    elif sparsity is not None:
        per_layer = dict.fromkeys(layers, float(sparsity))
    else:
        assert target_macs is not None
        total = count_cost(model, input_size)["macs"]
        eligible = sum(layers[n].weight.numel() * uses[n] for n in layers)
        needed = (1 - target_macs) * total / eligible
        if needed > MAX_SPARSITY:
            reachable = 1 - MAX_SPARSITY * eligible / total
            raise SecateursError(
                f"a MACs target of {target_macs:g} needs {needed:.0%} of the prunable layers' "
                f"weights zero; Campfire reaches {reachable:.3f} at most on this model"
            )
        per_layer = dict.fromkeys(layers, max(needed, 0.0))
    continuous = _counts(layers, granularities, per_layer)
    # MACs saved by one more entry pruned per structure: the layer's structure count x its uses
    saving = {}
    for name, module in layers.items():
        shape = tuple(module.weight.shape)
        structures = module.weight.numel() // structure_size(shape, granularities[0])
        saving[name] = structures * uses[name]
    counts = (
        _rounded(continuous, saving)
        if len(granularities) == 1
        else {n: {g: round(c) for g, c in by.items()} for n, by in continuous.items()}
    )
    return [LayerBudget(name, counts[name]) for name in layers]


def nonzero_macs(model: nn.Module, input_size: Sequence[int], keep: Mapping[str, Tensor]) -> int:
    """The model's MACs with each masked layer counted by its kept weights only."""
    total = count_cost(model, input_size)["macs"]
    uses = macs_per_weight(model, input_size)
    for name, mask in keep.items():
        total -= int((~mask.bool()).sum()) * uses[name]
    return int(total)
