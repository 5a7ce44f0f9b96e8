"""Which layers SG-CNN groups, and at what connection sparsity.

Convolutions: ungrouped, not depthwise, not reading the image, zero-padded. Fully connected
layers optionally (``linear=True``, not the last layer, which writes the classes): an output
unit is a filter, an input feature an input channel. A fully connected layer is never pruned
beyond :data:`FC_CAP` of its connections (the authors cap their FC layers); the convolutions
take up what the cap leaves of the MACs target.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

from torch import nn

from secateurs.errors import SecateursError
from secateurs.measurement.cost import count_cost
from secateurs.pruning.compaction.layers import input_layers, is_depthwise, macs_per_weight
from secateurs.pruning.sgcnn.schedule import MAX_SPARSITY

log = logging.getLogger(__name__)
FC_CAP = 0.6  # most of a fully connected layer's connections SG-CNN prunes


def ungroupable_reason(module: nn.Module, skipped: Collection[nn.Module]) -> str | None:
    """Why SG-CNN leaves a convolution dense, or None when it groups it (``skipped``: the
    layers that read the image)."""
    if module in skipped:
        return "reads the image"
    if not isinstance(module, nn.Conv2d):
        return f"{type(module).__name__} (only Conv2d is rewritten)"
    if module.in_channels < 2:
        return "reads one channel"
    if module.groups != 1 or is_depthwise(module):
        return f"already grouped (groups={module.groups})"
    if isinstance(module.padding, str):
        return f"padding {module.padding!r} cannot be grouped"
    if module.padding_mode != "zeros":
        return f"padding_mode {module.padding_mode!r} cannot be grouped"
    return None


def groupable_layers(
    model: nn.Module, input_size: Sequence[int], linear: bool = False
) -> dict[str, nn.Module]:
    """The layers SG-CNN groups (see the module's text); a convolution left out is named in the
    log with its reason, and a model with none is refused naming every convolution and why."""
    skipped = input_layers(model, input_size)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    last = linears[-1] if linears else None
    found: dict[str, nn.Module] = {}
    reasons: dict[str, str] = {}
    for name, module in model.named_modules():
        if linear and isinstance(module, nn.Linear) and module is not last:
            if module.in_features >= 2:
                found[name] = module
            continue
        if not isinstance(module, nn.modules.conv._ConvNd):
            continue
        reason = ungroupable_reason(module, skipped)
        if reason is None:
            found[name] = module
        else:
            reasons[name] = reason
            log.info("%s: %s; left dense", name, reason)
    if not found:
        named = "; ".join(f"{name}: {why}" for name, why in reasons.items()) or "none found"
        raise SecateursError(f"no convolution of the model can be grouped by SG-CNN ({named})")
    return found


def layer_sparsity(module: nn.Module, stage: float) -> float:
    """A stage's connection sparsity for one layer: capped for a fully connected layer."""
    return min(stage, FC_CAP) if isinstance(module, nn.Linear) else stage


def final_sparsity(
    model: nn.Module, input_size: Sequence[int], layers: Mapping[str, nn.Module], target: float
) -> float:
    """The connection sparsity of every grouped convolution (fully connected layers: capped)
    that leaves ``target`` of the model's MACs."""
    total = count_cost(model, input_size)["macs"]
    uses = macs_per_weight(model, input_size)
    macs = {name: module.weight.numel() * uses[name] for name, module in layers.items()}
    fc = sum(m for name, m in macs.items() if isinstance(layers[name], nn.Linear))
    convs = sum(macs.values()) - fc
    needed = (1 - target) * total
    sparsity = needed / (convs + fc)
    if sparsity > FC_CAP and fc:
        sparsity = (needed - FC_CAP * fc) / convs if convs else float("inf")
    if sparsity > MAX_SPARSITY:
        reachable = 1 - (MAX_SPARSITY * convs + min(MAX_SPARSITY, FC_CAP) * fc) / total
        raise SecateursError(
            f"a MACs target of {target:g} needs {sparsity:.0%} of the grouped convolutions' "
            f"connections pruned; SG-CNN reaches {reachable:.3f} at most on this model"
        )
    return sparsity
