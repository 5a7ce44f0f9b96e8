"""PFP's certificate: per group the eps, delta, m_l, k_l and S_l of the guarantee, next to the
error a plan actually makes on held-out images (:mod:`.pfp` is the method).

The bound eps limits ``|z_hat - z| <= eps (z+ + |z-|)`` for every output unit of a consumer, so
the error measured is ``max |z_hat - z| / (|W| * |a|)`` over images, units and positions, with
each consumer taken in isolation (its exact input, reduced and rescaled by the plan), and the
relative L2 error ``||z_hat - z|| / ||z||`` beside it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import ScoringData
from secateurs.pruning.methods.pfp_sensitivity import (
    FLOAT_EPS,
    ForwardHook,
    SampledLayer,
    consumers,
    conv_padding,
    run_with_hooks,
    scoring_images,
)
from secateurs.pruning.plan import PruningPlan


def input_factors(graph: ChannelGraph, plan: PruningPlan) -> dict[str, Tensor]:
    """Per consumer whose input the plan changes, the factor on each input channel: 0 removed,
    the plan's ``input_scales`` for a rescaled channel, else 1."""
    factors: dict[str, Tensor] = {}
    for group in graph.prunable_groups:
        removed = set(plan.removals.get(group.root, []))
        if not removed:
            continue
        for member in consumers(group):
            vector = factors.setdefault(
                member.name,
                torch.ones(member.module.weight.shape[1], device=member.module.weight.device),
            )
            for index, root in zip(member.indices, member.root_indices, strict=True):
                if root in removed:
                    vector[index] = 0.0
    for name, scales in plan.input_scales.items():
        if name in factors:
            for index, value in scales.items():
                factors[name][index] *= value
    return factors


def _outputs(module: nn.Module, a: Tensor, change: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(W * change, |W| * |a|, W * a) for one consumer, without bias."""
    weight = module.weight.detach().float()
    if isinstance(module, nn.Linear):
        return F.linear(change, weight), F.linear(a.abs(), weight.abs()), F.linear(a, weight)
    args = (module.stride, conv_padding(module), module.dilation)
    return (
        F.conv2d(change, weight, None, *args),
        F.conv2d(a.abs(), weight.abs(), None, *args),
        F.conv2d(a, weight, None, *args),
    )


def measure_layer_errors(
    graph: ChannelGraph, plan: PruningPlan, data: ScoringData, start: int, count: int
) -> dict[str, tuple[float, float]]:
    """For every consumer layer whose input the plan changes, on images ``start`` to
    ``start + count``: max over images, units and positions of |z_hat - z| / (|W| * |a|), and the
    relative L2 error ||z_hat - z|| / ||z|| (z = W * a without bias, each layer in isolation)."""
    factors = input_factors(graph, plan)
    if count <= 0 or not factors:
        return {}
    totals: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in factors}

    def hook(name: str) -> ForwardHook:
        def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            a = inputs[0].detach().float()
            shape = [1] * a.ndim
            shape[-1 if isinstance(module, nn.Linear) else 1] = -1
            diff, scale, exact = _outputs(module, a, a * (factors[name].view(shape) - 1))
            ratio = torch.where(
                scale > FLOAT_EPS, diff.abs() / scale, torch.zeros((), device=scale.device)
            )
            entry = totals[name]
            entry[0] = max(entry[0], float(ratio.max()))
            entry[1] += float(diff.pow(2).sum())
            entry[2] += float(exact.pow(2).sum())

        return record

    hooks = {graph.module(name): hook(name) for name in factors}
    run_with_hooks(graph.model, hooks, scoring_images(data, start, count))
    return {
        name: (worst, math.sqrt(diff / exact) if exact > 0 else 0.0)
        for name, (worst, diff, exact) in totals.items()
    }


def _json_number(value: int | float) -> int | float:
    """An integer JSON readers can hold (beyond 2^53 as a float)."""
    return value if value < 2**53 else float(value)


def certificate_rows(
    layers: list[SampledLayer],
    counts: list[int],
    plan: PruningPlan,
    eps: float,
    delta: float,
    images: tuple[int, int],
    errors: dict[str, tuple[float, float]],
    randomized: bool,
) -> list[dict[str, Any]]:
    """One row per group: the guarantee (eps, delta, m_l, k_l = ``counts``, S_l) and the worst
    measured errors of its consumers; ``images`` is (|S|, held-out images).

    ``bound`` is eps only for the randomized selection, the one the theorem is about; the
    deterministic top-k_l has no bound (None). ``vacuous`` says eps >= 1: the measured error is
    at most 1 by construction (a removed input can take away at most all of |W| * |a|), so such
    an eps promises nothing."""
    used, held_out = images
    rows = []
    for layer, kept in zip(layers, counts, strict=True):
        names = [m.name for m in consumers(layer.group)]
        found = [errors[n] for n in names if n in errors]
        if not found and held_out > 0:
            found = [(0.0, 0.0)]  # nothing this group's consumers read was changed
        rows.append(
            {
                "group": layer.group.root,
                "consumers": names,
                "channels": layer.group.size,
                "kept": layer.group.size - len(plan.removals.get(layer.group.root, [])),
                "eps": eps,
                "delta": delta,
                "m": _json_number(layer.sample_size(eps)),
                "k": kept,
                "S_l": layer.total,
                "sample_images": used,
                "held_out_images": held_out,
                "error_max": max((e[0] for e in found), default=None),
                "error_l2": max((e[1] for e in found), default=None),
                "bound": eps if randomized else None,
                "vacuous": eps >= 1,
            }
        )
    return rows
