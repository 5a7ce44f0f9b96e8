"""Weak Sub-network Pruning (Qingbei Guo et al.; "WSP", Neural Networks 144:614-626, 2021).

A channel belongs to the *weak sub-network* when it contributes little to both the forward pass
(its activations are sparse and small) and the backward pass (the gradient reaching it is sparse
and small). The weak sub-network of all layers is removed in one shot; the strong one that
remains is then fine-tuned globally (``secateurs prune --finetune-epochs N``).

Strengths of channel c of a group, measured over the scoring batches (model in eval mode):

    forward   f[c] = mean |a_c|      a_c: the channel as its consumers read it (the input of every
                                     dense conv / linear layer reading it: after BN, activation,
                                     residual addition, pooling, flattening - whatever is there)
    backward  b[c] = mean |dL/dz_c|  z_c: the channel where it is produced (the BN output, or the
                                     conv / linear output without BN), so the gradient has passed
                                     back through whatever activation follows: a ReLU zeroes it
                                     wherever the channel was off

A mean of absolute values folds the sparsity in: mean |a| = (1 - sparsity) x (mean magnitude of
the non-zero values), so a dead channel (sparsity 1) has strength 0 and both facts the paper uses
(sparsity, magnitude) move the strength the same way. Sparsities (fraction of exact zeros) are
kept in ``strengths_`` for inspection. ``saliency="weights"`` uses the authors' code's proxies
instead: f[c] = sum |W_l[c]| over the layers producing c, b[c] = sum |W_{l+1}[:, c]| over the
layers reading c (for a linear layer after a flatten, the whole block of inputs of channel c).

Each strength is divided by its group's mean (layers compare), and

    score[c] = max(f[c] / mean f, b[c] / mean b)

is low only when both are low: score < t  <=>  weak in both passes at level t. Selection: one
global threshold on the score across all layers, budgeted by MACs or parameters through the
engine's allocator (default); or, with ``percentile=p``, the authors' per-layer rule: in every
group, the channels below the p-th percentile of f *and* below the p-th percentile of b go (at
most floor(p% of the group)); the target is then ignored and the achieved ratio is what it is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.errors import SecateursError
from secateurs.pruning.allocation import Allocation, Allocator, Target, kept_count
from secateurs.pruning.channel_scores import producing_layers, scatter
from secateurs.pruning.graph import IN, OUT, ChannelGraph, ChannelGroup, Member
from secateurs.pruning.methods.base import (
    MethodPlan,
    PlanRequest,
    PruningMethod,
    ScoringData,
    register_method,
)
from secateurs.pruning.methods.norm import filter_norms
from secateurs.pruning.plan import PruningPlan

log = logging.getLogger(__name__)
SALIENCIES = ("data", "weights")


@dataclass
class Strengths:
    """One group's per-channel strengths (float64); sparsities only for data saliency."""

    forward: Tensor
    backward: Tensor
    forward_sparsity: Tensor | None = None
    backward_sparsity: Tensor | None = None

    @property
    def score(self) -> Tensor:
        """max of the two strengths, each divided by its group mean."""
        return torch.maximum(_by_mean(self.forward), _by_mean(self.backward))


def _by_mean(values: Tensor) -> Tensor:
    return values / values.mean().clamp_min(1e-30)


# -- which layers see a group's channels ----------------------------------------------------------
def reading_layers(group: ChannelGroup) -> list[Member]:
    """Layers that read the group's channels and mix them: dense convolutions and linear layers
    (a depthwise convolution passes each channel on alone; its output is read further on)."""
    return [
        member
        for member in group.members
        if member.direction == IN
        and (
            isinstance(member.module, nn.Linear)
            or (isinstance(member.module, nn.modules.conv._ConvNd) and member.module.groups == 1)
        )
    ]


def gradient_sites(group: ChannelGroup) -> list[Member]:
    """Where the group's channels are produced: its BatchNorms, else its conv / linear layers."""
    norms = group.layers(OUT, (nn.modules.batchnorm._BatchNorm,))
    return norms or producing_layers(group)


def _channel_dim(module: nn.Module) -> int:
    return -1 if isinstance(module, nn.Linear) else 1


class _Tally:
    """Running per-channel sums of |value|, of exact zeros and of the number of values."""

    def __init__(self) -> None:
        self.magnitude: Tensor | None = None
        self.zeros: Tensor | None = None
        self.count = 0

    def add(self, value: Tensor, dim: int) -> None:
        flat = value.detach().movedim(dim, 0).flatten(1)
        magnitude = flat.abs().sum(1, dtype=torch.float64)
        zeros = (flat == 0).sum(1).double()
        if self.magnitude is None or self.zeros is None:
            self.magnitude, self.zeros = magnitude, zeros
        else:
            self.magnitude += magnitude
            self.zeros += zeros
        self.count += flat.shape[1]


def _pooled(group: ChannelGroup, members: list[Member], tallies: dict[str, _Tally]):
    """(mean |value|, fraction of zeros) per group channel over every member's values, or None."""
    device = model_device(members[0].module) if members else None
    magnitude = torch.zeros(group.size, dtype=torch.float64, device=device)
    zeros, count = torch.zeros_like(magnitude), torch.zeros_like(magnitude)
    for member in members:
        tally = tallies.get(member.name)
        if tally is None or tally.magnitude is None or tally.zeros is None:
            continue
        magnitude += scatter(group, member, tally.magnitude)
        zeros += scatter(group, member, tally.zeros)
        count += scatter(group, member, torch.full_like(tally.magnitude, tally.count))
    if not (count > 0).all():
        return None
    return magnitude / count, zeros / count


# -- data-driven strengths ------------------------------------------------------------------------
def measure_strengths(graph: ChannelGraph, data: ScoringData) -> dict[str, Strengths]:
    """Forward and backward strengths of every prunable group over ``data``'s batches."""
    groups = graph.prunable_groups
    readers = {m.name: m.module for g in groups for m in reading_layers(g)}
    producers = {m.name: m.module for g in groups for m in gradient_sites(g)}
    inputs: dict[str, _Tally] = {}
    outputs: dict[str, _Tally] = {}  # relu(output): forward fallback for groups nobody reads
    gradients: dict[str, _Tally] = {}

    def read_hook(name: str):
        def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            inputs.setdefault(name, _Tally()).add(args[0], _channel_dim(module))

        return hook

    def produce_hook(name: str):
        def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor:
            dim = _channel_dim(module)
            outputs.setdefault(name, _Tally()).add(output.clamp_min(0), dim)
            if output.requires_grad:
                tally = gradients.setdefault(name, _Tally())
                output.register_hook(lambda grad: tally.add(grad, dim))
            # an in-place activation next (ReLU(inplace=True)) changes the copy, never the tensor
            # whose gradient is hooked (torch 2.14 copes without it; this does not rely on that)
            return output.clone()

        return hook

    handles = [m.register_forward_pre_hook(read_hook(n)) for n, m in readers.items()]
    handles += [m.register_forward_hook(produce_hook(n)) for n, m in producers.items()]
    model = graph.model
    was_training = model.training
    try:
        model.eval()  # running BN statistics, no dropout: scoring changes nothing in the model
        with torch.enable_grad():
            for images, labels in data.batches:
                if labels is None:
                    raise SecateursError("wsp's data saliency needs labels to compute gradients")
                model.zero_grad(set_to_none=True)
                data.loss(model(images), labels).backward()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    strengths = {}
    for group in groups:
        forward = _pooled(group, reading_layers(group), inputs)
        if forward is None:
            log.warning("wsp: nothing reads %s; forward strength from relu(output)", group.root)
            forward = _pooled(group, gradient_sites(group), outputs)
        backward = _pooled(group, gradient_sites(group), gradients)
        if forward is None or backward is None:
            raise SecateursError(f"wsp: no activations or gradients reached group {group.root}")
        strengths[group.root] = Strengths(forward[0], backward[0], forward[1], backward[1])
    return strengths


# -- weight-norm proxies (the authors' code) ------------------------------------------------------
def weight_strengths(graph: ChannelGraph) -> dict[str, Strengths]:
    """F[c] = sum |W_l[c]| over producers, Ch[c] = sum |W_{l+1}[:, c]| over readers."""
    producing = filter_norms(graph, power=1)
    strengths = {}
    for group in graph.prunable_groups:
        consuming = torch.zeros(
            group.size, dtype=torch.float64, device=producing[group.root].device
        )
        for member in reading_layers(group):
            weight = member.module.weight.detach().abs()
            consuming += scatter(group, member, weight.transpose(0, 1).flatten(1).sum(1))
        strengths[group.root] = Strengths(producing[group.root], consuming)
    return strengths


# -- the authors' per-layer percentile rule -------------------------------------------------------
def weak_at_percentile(
    group: ChannelGroup, strengths: Strengths, percentile: float, allocation: Allocation
) -> list[int]:
    """Channels below the p-th percentile of both strengths (numpy's linear interpolation, strict
    <, as the authors), at most floor(p% of the group) and never below ``min_channels``."""
    q = percentile / 100
    forward, backward = strengths.forward, strengths.backward
    weak = (forward < torch.quantile(forward, q)) & (backward < torch.quantile(backward, q))
    candidates = torch.nonzero(weak).flatten()
    wanted = min(math.floor(q * group.size + 1e-9), len(candidates))
    removed = group.size - kept_count(group, group.size - wanted, allocation)
    order = torch.argsort(strengths.score[candidates], stable=True)  # weakest first
    return sorted(candidates[order[: max(removed, 0)]].tolist())


@register_method
class WeakSubnetworkPruning(PruningMethod):
    name = "wsp"
    summary = "channels weak in both forward and backward passes, one shot (Guo et al. 2021)"
    needs_data = True  # the default data saliency; saliency="weights" needs none
    normalize = "none"  # the score is already built from group-mean-normalised strengths

    def __init__(
        self,
        seed: int = 0,
        saliency: str = "data",  # "data": measured activations and gradients; "weights": norms
        percentile: float | None = None,  # p: the authors' per-layer rule, target ignored
    ) -> None:
        super().__init__(seed)
        if saliency not in SALIENCIES:
            raise SecateursError(f"wsp saliency is one of {', '.join(SALIENCIES)}")
        if percentile is not None and not 0 < percentile < 100:
            raise SecateursError(f"wsp percentile must be in (0, 100), not {percentile}")
        self.saliency = saliency
        self.percentile = percentile

    def uses_data(self) -> bool:
        """The data saliency needs batches; the weight-norm proxies do not."""
        return self.saliency == "data"

    def strengths(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Strengths]:
        """Every group's strengths, by the chosen saliency; kept in ``strengths_``."""
        if self.saliency == "weights":
            self.strengths_ = weight_strengths(graph)
        else:
            self.strengths_ = measure_strengths(graph, data)
        return self.strengths_

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        """max(f / mean f, b / mean b) per channel (:attr:`Strengths.score`)."""
        return {root: s.score for root, s in self.strengths(graph, data).items()}

    def _allocate(self, request: PlanRequest) -> MethodPlan:
        """Global threshold meeting ``target``; or, with ``percentile``, the per-layer rule (the
        achieved ratio is then what the rule achieved, of ``target.kind``). Per-layer ratios
        (a mapping) take precedence over ``percentile``."""
        graph, data, target, allocation = request
        if self.percentile is None or not isinstance(target, Target):
            return super()._allocate(request)
        allocator = Allocator(graph, self.score(graph, data), allocation)
        removals = {}
        for group in graph.prunable_groups:
            weak = weak_at_percentile(
                group, self.strengths_[group.root], self.percentile, allocation
            )
            if weak:
                removals[group.root] = weak
        plan = PruningPlan(removals)
        achieved = allocator.measured_ratio(plan, target.kind)
        log.info(
            "wsp: percentile %g removes %d channels, %s ratio %.4f (target ignored)",
            self.percentile,
            plan.removed_count,
            target.kind,
            achieved,
        )
        return MethodPlan(plan, achieved)
