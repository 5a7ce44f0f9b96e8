"""PFP's sensitivities and sampling maths (Liebenwein et al., ICLR 2020; :mod:`.pfp` is the method).

Sensitivities: for a consumer layer with weights split into W+ and W- and a non-negative input a,
``s_j`` is the largest share ``w_ijk a_jk / z_i`` that input channel j ever takes of an output
unit's positive or negative part, over images, output units, positions and kernel offsets.
Saturated sensitivities (s_j = 1: some output unit, on some image, read channel j alone) are
common with a few hundred images; they are ordered among themselves by ``t_j``, the channel's
largest share of an output unit averaged over points and units (:attr:`SampledLayer.ranking`).
Sampling: a group with sensitivities s_j is one :class:`SampledLayer`, which gives ``p_j``,
``S_l``, ``m_l(eps)``, ``k_l(eps)`` and the draw count ``m'`` of the randomized selection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.device import model_device
from secateurs.pruning.graph import IN, ChannelGroup, Member
from secateurs.pruning.methods.base import ScoringData
from secateurs.pruning.plan import input_scalable

FLOAT_EPS = float(np.finfo(np.float32).eps)  # |z| at or below this: ratio 0
SATURATION = 1e-6  # s_j this close to 1 is saturated (1.0 and 1.000000119 are float32 rounding)
BLOCK_ELEMENTS = 1 << 19  # float32 elements per block of the sensitivity computation (2 MB)
ForwardHook = Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]


# -- which layers, and their inputs ----------------------------------------------------------------
def consumers(group: ChannelGroup) -> list[Member]:
    """The layers that read the group's channels and mix them: dense convolutions and linear
    layers (depthwise convolutions pass a channel through on its own; they are not consumers)."""
    return [
        m
        for m in group.members
        if m.direction == IN and input_scalable(m.module) and _supported(m.module)
    ]


def _supported(module: nn.Module) -> bool:
    """Consumers whose patches ``F.unfold`` can take: linear layers, and 2-D convolutions with
    zero padding that is symmetric (numbers, "valid", or "same" with odd dilated kernels)."""
    return isinstance(module, nn.Linear) or (
        isinstance(module, nn.Conv2d)
        and module.padding_mode == "zeros"
        and conv_padding(module) is not None
    )


def conv_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """``conv``'s padding as numbers; None for a "same" that pads one side more."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding != "same":
        return tuple(conv.padding)  # type: ignore[return-value]
    spans = [d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation, strict=True)]
    return None if any(span % 2 for span in spans) else (spans[0] // 2, spans[1] // 2)


def _patches(module: nn.Module, inputs: Tensor) -> Tensor:
    """(points, input features x kernel offsets, output positions) for one consumer."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1]).unsqueeze(-1)
    return F.unfold(
        inputs, module.kernel_size, module.dilation, conv_padding(module), module.stride
    )


def nonnegative_points(inputs: Tensor) -> Tensor:
    """A signed input becomes two non-negative data points: cat(a+, a-) along the batch."""
    if (inputs < 0).any():
        return torch.cat((inputs.clamp_min(0), (-inputs).clamp_min(0)))
    return inputs


def scoring_images(data: ScoringData, start: int, count: int) -> Iterator[Tensor]:
    """Images ``start`` to ``start + count`` of the scoring batches, in their batches."""
    seen = 0
    for images, _ in data.batches:
        low, high = max(start - seen, 0), min(start + count - seen, len(images))
        if low < high:
            yield images[low:high]
        seen += len(images)


def available_images(data: ScoringData) -> int:
    """How many images the scoring batches hold."""
    return sum(len(images) for images, _ in data.batches)


def run_with_hooks(
    model: nn.Module, hooks: dict[nn.Module, ForwardHook], batches: Iterable[Tensor]
) -> None:
    """Run ``model`` in eval mode without gradients on ``batches`` with forward ``hooks`` on its
    modules; the hooks are removed and the training mode restored afterwards."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for images in batches:
                model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


# -- sensitivities --------------------------------------------------------------------------------
@dataclass
class LayerStats:
    """One consumer layer's sensitivities, the tie-breaking statistic and the sizes that enter
    ``alpha_l``."""

    sensitivity: Tensor  # per input channel of the layer: s_j, the max share
    share_sum: Tensor  # per input channel: sum over (point, output unit) of the largest share
    share_count: int  # how many (point, output unit) pairs the sum is over
    positions: int = 1  # P_l: output positions per image
    kappa: int = 1  # kernel offsets

    @property
    def mean_share(self) -> Tensor:
        """t_j: the channel's largest share of an output unit (over positions and offsets),
        averaged over points and output units; breaks ties among saturated s_j."""
        return self.share_sum / max(1, self.share_count)

    def merged(self, other: LayerStats) -> LayerStats:
        """The statistics of both samples together (max of s, sum of the shares)."""
        return LayerStats(
            torch.maximum(self.sensitivity, other.sensitivity),
            self.share_sum + other.share_sum,
            self.share_count + other.share_count,
            self.positions,
            self.kappa,
        )


def layer_statistics(module: nn.Module, inputs: Tensor) -> LayerStats:
    """s_j = max over points, outputs, positions and kernel offsets of g, per input channel, and
    the sum over points and outputs of max over positions and offsets of g (for t_j).

    The work is done on blocks of (points, output units, input features x offsets, positions)
    of about ``BLOCK_ELEMENTS``, small enough to stay in cache (five times faster than one big
    block); a block holds several points when one point's block is small enough, else a slice of
    the output units of one point.
    """
    points = _patches(module, nonnegative_points(inputs.detach().float()))
    weight = module.weight.detach().float().flatten(1)  # (outputs, inputs x offsets)
    split = torch.cat((weight.clamp_min(0), (-weight).clamp_min(0)))  # W+ and |W-|
    channels = module.weight.shape[1]
    per_unit = points.shape[1] * points.shape[2]
    units = max(1, min(split.shape[0], BLOCK_ELEMENTS // per_unit))
    images = max(1, BLOCK_ELEMENTS // (per_unit * split.shape[0]))
    best = torch.zeros(points.shape[1], device=points.device)
    shares = torch.zeros(channels, dtype=torch.float64, device=points.device)
    for block in points.split(images):
        z = split @ block  # (n, 2 outputs, positions): z+ and |z-|
        inverse = torch.where(z > FLOAT_EPS, 1.0 / z, torch.zeros((), device=z.device))
        for part, weights in zip(inverse.split(units, 1), split.split(units), strict=True):
            # max over positions of a_jk(p) / z_i(p), times w_ijk: g per point, output, feature
            g = (block.unsqueeze(1) * part.unsqueeze(2)).amax(-1) * weights
            best = torch.maximum(best, g.amax((0, 1)))
            per_channel = g.view(*g.shape[:2], channels, -1).amax(-1)
            shares += per_channel.sum((0, 1)).double()
    count = points.shape[0] * split.shape[0]
    return LayerStats(best.view(channels, -1).amax(1), shares, count)


def layer_sensitivity(module: nn.Module, inputs: Tensor) -> Tensor:
    """s_j of one consumer on one batch of inputs (see :func:`layer_statistics`)."""
    return layer_statistics(module, inputs).sensitivity


def measure_sensitivities(
    model: nn.Module, layers: dict[str, nn.Module], data: ScoringData, count: int
) -> dict[str, LayerStats]:
    """Sensitivities of every named consumer layer from the first ``count`` images."""
    stats: dict[str, LayerStats] = {}

    def hook(name: str) -> ForwardHook:
        def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            value = layer_statistics(module, inputs[0])
            if not isinstance(module, nn.Linear):
                value.positions = output.shape[-2] * output.shape[-1]
                value.kappa = math.prod(module.kernel_size)
            stats[name] = stats[name].merged(value) if name in stats else value

        return record

    hooks = {module: hook(name) for name, module in layers.items()}
    run_with_hooks(model, hooks, scoring_images(data, 0, count))
    return stats


def default_sample_size(model: nn.Module, input_size: tuple[int, ...], delta: float) -> int:
    """|S| = ceil(3 ln(8 eta eta* / delta)): eta output units of all conv/linear layers, eta* of
    the largest (about 180 images for a CIFAR ResNet-20)."""
    units: list[int] = []
    hooks: dict[nn.Module, ForwardHook] = {
        module: lambda m, i, o: units.append(o[0].numel())
        for module in model.modules()
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear))
    }
    run_with_hooks(model, hooks, [torch.zeros(1, *input_size, device=model_device(model))])
    return math.ceil(3 * math.log(8 * sum(units) * max(units) / delta))


# -- sampling --------------------------------------------------------------------------------------
@dataclass
class SampledLayer:
    """One prunable group as PFP samples it: its channels' sensitivities and ``alpha_l``."""

    group: ChannelGroup
    sensitivity: Tensor  # s_j, float64, per group channel
    alpha: float  # 2 C ln(8 (P_l + 1) kappa_l / delta)
    positions: int
    kappa: int
    mean_share: Tensor | None = None  # t_j, float64, per group channel (ties among saturated s)

    @property
    def ranking(self) -> Tensor:
        """The order channels are kept in: s_j, except that saturated channels (s_j within
        ``SATURATION`` of its maximum 1, where float32 rounding alone told them apart) rank
        above the rest and among themselves by t_j. The sampling maths keep s_j."""
        s = self.sensitivity
        if self.mean_share is None:
            return s
        saturated = s >= 1 - SATURATION
        return torch.where(saturated, 1 + SATURATION * self.mean_share.clamp(0, 1), s)

    @property
    def total(self) -> float:
        """S_l = sum_j s_j."""
        return float(self.sensitivity.sum())

    @property
    def probability(self) -> Tensor:
        """p_j = s_j / S_l (uniform when every s_j is 0)."""
        if self.total <= 0:
            return torch.full_like(self.sensitivity, 1.0 / len(self.sensitivity))
        return self.sensitivity / self.total

    def sample_size(self, eps: float) -> float:
        """m_l(eps) = ceil(3 (6 + 2 eps) S_l alpha_l / eps^2), capped at 1e300."""
        return math.ceil(min(3 * (6 + 2 * eps) * self.total * self.alpha / eps**2, 1e300))

    def expected_unique(self, draws: float) -> float:
        """sum_j 1 - (1 - p_j)^draws: distinct channels expected among ``draws`` draws."""
        p = self.probability.clamp(0, 1)
        return float((1 - torch.exp(float(draws) * torch.log1p(-p))).sum())

    def kept(self, eps: float) -> int:
        """k_l(eps) = clip(ceil(expected_unique(m_l(eps))), 1, C_l)."""
        if self.total <= 0:
            return 1
        unique = self.expected_unique(self.sample_size(eps))
        return int(min(max(math.ceil(unique - 1e-9), 1), self.group.size))

    def draws_for(self, kept: int) -> int:
        """The smallest m' whose expected number of distinct channels reaches ``kept``."""
        low, high = 1, 1
        while self.expected_unique(high) < kept - 1e-9 and high < 1 << 60:
            low, high = high, high * 2
        while low < high:
            middle = (low + high) // 2
            if self.expected_unique(middle) >= kept - 1e-9:
                high = middle
            else:
                low = middle + 1
        return high
