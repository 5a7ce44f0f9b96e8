"""Fold the average contribution of removed channels into the layers that read them.

A removed channel j is not zero in the unpruned model: after BN and ReLU it carries a mean value
a_j > 0 (the BN shift through the activation). Every consumer (a dense convolution or a linear
layer reading channel j) loses sum_k W[o, j, k] * a_j from output o, a constant per output unit
under the mean-field approximation (zero padding at the borders ignored). Folding puts it back:

    linear or convolution with a bias:        bias[o]         += sum_k W[o, j, k] a_j
    bias-free convolution followed by BN:     running_mean[o] -= sum_k W[o, j, k] a_j

(the BN form is exact in evaluation mode: BN(y + c) with mean mu equals BN(y) with mean mu - c).
A consumer with neither is left alone and reported. Means are measured with forward pre-hooks
on the unpruned model over the scoring batches, per input channel (mean over images and positions)
for convolutions and per input feature for linear layers, which handles the convolution-to-linear
boundary, where one channel is a block of flattened features.

This changes values only, never shapes, so a folded model saves and reloads like any other. The
surgery code does not import it; :func:`secateurs.pruning.prune.prune_model` calls it before the
surgery when asked to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.graph import IN, ChannelGraph
from secateurs.pruning.plan import PruningPlan, input_scalable


@dataclass
class FoldResult:
    folded: list[str]  # consumers whose bias or BN mean received the contribution
    skipped: list[str]  # consumers with neither a bias nor a following BN

    def to_json(self) -> dict[str, list[str]]:
        return {"folded": self.folded, "skipped": self.skipped}


def removed_inputs(graph: ChannelGraph, plan: PruningPlan) -> dict[str, list[int]]:
    """Per consumer layer name, the input indices (its own numbering) that the plan removes."""
    found: dict[str, set[int]] = {}
    for group in graph.groups:
        removed = set(plan.removals.get(group.root, []))
        if not removed:
            continue
        for member in group.members:
            if member.direction != IN or not input_scalable(member.module):
                continue
            for index, root in zip(member.indices, member.root_indices, strict=True):
                if root in removed:
                    found.setdefault(member.name, set()).add(int(index))
    return {name: sorted(indices) for name, indices in found.items()}


def input_means(
    model: nn.Module, layers: Sequence[str], batches: Sequence[tuple[Tensor, Tensor]]
) -> dict[str, Tensor]:
    """Mean input of each named layer per input channel (conv) or feature (linear)."""
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            x = inputs[0].detach().double()
            if isinstance(module, nn.Linear):
                x = x.reshape(-1, x.shape[-1])
                total, n = x.sum(0), x.shape[0]
            else:
                total, n = x.sum((0, *range(2, x.ndim))), x.shape[0] * x[0, 0].numel()
            sums[name] = sums.get(name, 0) + total
            counts[name] = counts.get(name, 0) + n

        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for images, _ in batches:
                model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: (sums[name] / counts[name]).float() for name in sums}


def _following_batchnorm(graph: ChannelGraph, module: nn.Module) -> nn.Module | None:
    """The BatchNorm that alone reads ``module``'s output, if there is one."""
    node = graph.dependency_graph.module2node.get(module)
    if node is None or len(node.outputs) != 1:
        return None
    follower = node.outputs[0].module
    return follower if isinstance(follower, nn.modules.batchnorm._BatchNorm) else None


def fold_removed_channels(
    graph: ChannelGraph, plan: PruningPlan, batches: Sequence[tuple[Tensor, Tensor]]
) -> FoldResult:
    """Add each consumer's lost mean contribution to its bias (or its BN's running mean).

    Call before :func:`~secateurs.pruning.surgery.remove_channels` with the same graph and plan.
    """
    if not batches:
        raise SecateursError("folding removed channels needs data to measure their means")
    removed = removed_inputs(graph, plan)
    means = input_means(graph.model, list(removed), batches)
    result = FoldResult([], [])
    with torch.no_grad():
        for name, indices in removed.items():
            module = graph.module(name)
            index = torch.tensor(indices)
            weight = module.weight.detach()[:, index]
            weight = weight.reshape(*weight.shape[:2], -1).sum(2)  # (outputs, removed)
            shift = (weight * means[name][index]).sum(1)
            if module.bias is not None:
                module.bias.add_(shift)
            elif (norm := _following_batchnorm(graph, module)) is not None and (
                norm.running_mean is not None
            ):
                norm.running_mean.sub_(shift)
            else:
                result.skipped.append(name)
                continue
            result.folded.append(name)
    return result
