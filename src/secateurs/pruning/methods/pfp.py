"""Provable Filter Pruning (Liebenwein, Baykal, Lang, Feldman, Rus; "Provable Filter Pruning for
Efficient Neural Networks", ICLR 2020).

PFP scores the *input* channels of the layers that read a group's channels (its consumers): a
channel matters as much as the largest share it ever takes of a consumer's output. With the
consumer's weights split into W+ (positive) and W- (negative), input a >= 0 (after BN and ReLU;
a signed input is split into two non-negative data points, a+ and a-), z+ = W+ * a, z- = W- * a:

    g_jk(x, i, p) = max(w+_ijk a_jk(x, p) / z+_i(x, p),  w-_ijk a_jk(x, p) / z-_i(x, p))
    s_j           = max over images x in S, output units i, positions p and kernel offsets k

(|z| <= float32 eps counts as infinite: ratio 0). A coupled group (a residual stream, several
consumers) takes the maximum of its consumers' sensitivities. Sampling: p_j = s_j / S_l,
S_l = sum_j s_j, and for a tolerance eps shared by all layers

    alpha_l = 2 C ln(8 (P_l + 1) kappa_l / delta)         C = 3, delta = 1e-16
    m_l     = ceil(3 (6 + 2 eps) S_l alpha_l / eps^2)      P_l positions, kappa_l kernel size
    k_l     = clip(ceil(sum_j 1 - (1 - p_j)^m_l), 1, C_l)  expected distinct channels drawn

``selection="deterministic"`` (the authors' released configurations) keeps the top-k_l channels
by s; ``"randomized"`` (the paper's algorithm) draws counts ~ Multinomial(m', p) with m' giving
k_l distinct channels in expectation, keeps those drawn, and rescales the consumers' weights by
count_j / (m' p_j) through the plan's ``input_scales``. eps is solved with Brent's method on the
predicted cost, then corrected until real surgery on a copy meets the target within tolerance.
After :meth:`ProvableFilterPruning.plan`, ``certificate_`` holds per group eps, delta, m_l, k_l,
S_l, |S| and the error measured on held-out images next to the bound eps.

``budget="engine"`` is an ablation, not PFP: the sensitivities s_j, ranked by the engine's
allocation (``--strategy global`` or ``uniform``) instead of the eps budget, to tell the ranking's
effect from the per-layer budget's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import brentq
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.pruning.allocation import Allocation, Allocator, Target, kept_count
from secateurs.pruning.graph import IN, ChannelGraph, ChannelGroup, Member
from secateurs.pruning.methods.base import PruningMethod, ScoringData, register_method
from secateurs.pruning.plan import PruningPlan, input_scalable

log = logging.getLogger(__name__)
FLOAT_EPS = float(np.finfo(np.float32).eps)  # |z| at or below this: ratio 0
BLOCK_ELEMENTS = 1 << 19  # float32 elements per block of the sensitivity computation (2 MB)
SELECTIONS = ("deterministic", "randomized")
BUDGETS = ("eps", "engine")
LOG_EPS_RANGE = (math.log(1e-8), math.log(1e12))


# -- sensitivities ------------------------------------------------------------------------------
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
        and _padding(module) is not None
    )


def _padding(conv: nn.Conv2d) -> tuple[int, int] | None:
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
    return F.unfold(inputs, module.kernel_size, module.dilation, _padding(module), module.stride)


def nonnegative_points(inputs: Tensor) -> Tensor:
    """A signed input becomes two non-negative data points: cat(a+, a-) along the batch."""
    if (inputs < 0).any():
        return torch.cat((inputs.clamp_min(0), (-inputs).clamp_min(0)))
    return inputs


def layer_sensitivity(module: nn.Module, inputs: Tensor) -> Tensor:
    """max over points, outputs, positions and kernel offsets of g, per input channel.

    The work is done on blocks of (points, output units, input features x offsets, positions)
    of about ``BLOCK_ELEMENTS``, small enough to stay in cache (five times faster than one big
    block); a block holds several points when one point's block is small enough, else a slice of
    the output units of one point.
    """
    points = _patches(module, nonnegative_points(inputs.detach().float()))
    weight = module.weight.detach().float().flatten(1)  # (outputs, inputs x offsets)
    split = torch.cat((weight.clamp_min(0), (-weight).clamp_min(0)))  # W+ and |W-|
    per_unit = points.shape[1] * points.shape[2]
    units = max(1, min(split.shape[0], BLOCK_ELEMENTS // per_unit))
    images = max(1, BLOCK_ELEMENTS // (per_unit * split.shape[0]))
    best = torch.zeros(points.shape[1])
    for block in points.split(images):
        z = split @ block  # (n, 2 outputs, positions): z+ and |z-|
        inverse = torch.where(z > FLOAT_EPS, 1.0 / z, torch.zeros(()))
        for part, weights in zip(inverse.split(units, 1), split.split(units), strict=True):
            # max over positions of a_jk(p) / z_i(p), times w_ijk, max over points and outputs
            ratio = (block.unsqueeze(1) * part.unsqueeze(2)).amax(-1)
            best = torch.maximum(best, (ratio * weights).amax((0, 1)))
    channels = module.weight.shape[1]
    return best.view(channels, -1).amax(1)


@dataclass
class _LayerStats:
    sensitivity: Tensor  # per input channel of the layer
    positions: int  # P_l: output positions per image
    kappa: int  # kernel offsets


def _images(data: ScoringData, start: int, count: int) -> Iterator[Tensor]:
    """Images ``start`` to ``start + count`` of the scoring batches, in their batches."""
    seen = 0
    for images, _ in data.batches:
        low, high = max(start - seen, 0), min(start + count - seen, len(images))
        if low < high:
            yield images[low:high]
        seen += len(images)


def _available(data: ScoringData) -> int:
    return sum(len(images) for images, _ in data.batches)


def measure_sensitivities(
    model: nn.Module, layers: dict[str, nn.Module], data: ScoringData, count: int
) -> dict[str, _LayerStats]:
    """Sensitivities of every named consumer layer from the first ``count`` images."""
    stats: dict[str, _LayerStats] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            value = layer_sensitivity(module, inputs[0])
            if isinstance(module, nn.Linear):
                positions, kappa = 1, 1
            else:
                positions, kappa = (
                    output.shape[-2] * output.shape[-1],
                    math.prod(module.kernel_size),
                )
            if name in stats:
                value = torch.maximum(stats[name].sensitivity, value)
            stats[name] = _LayerStats(value, positions, kappa)

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in layers.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for images in _images(data, 0, count):
                model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return stats


def default_sample_size(model: nn.Module, input_size: tuple[int, ...], delta: float) -> int:
    """|S| = ceil(3 ln(8 eta eta* / delta)): eta output units of all conv/linear layers, eta* of
    the largest (about 180 images for a CIFAR ResNet-20)."""
    units: list[int] = []
    handles = [
        module.register_forward_hook(lambda m, i, o: units.append(o[0].numel()))
        for module in model.modules()
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear))
    ]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return math.ceil(3 * math.log(8 * sum(units) * max(units) / delta))


# -- sample sizes ---------------------------------------------------------------------------------
@dataclass
class _Layer:
    """One prunable group as PFP sees it."""

    group: ChannelGroup
    sensitivity: Tensor  # s_j, float64, per group channel
    alpha: float
    positions: int
    kappa: int

    @property
    def total(self) -> float:  # S_l
        return float(self.sensitivity.sum())

    @property
    def probability(self) -> Tensor:
        if self.total <= 0:
            return torch.full_like(self.sensitivity, 1.0 / len(self.sensitivity))
        return self.sensitivity / self.total

    def sample_size(self, eps: float) -> float:  # m_l(eps), may be astronomically large
        return math.ceil(min(3 * (6 + 2 * eps) * self.total * self.alpha / eps**2, 1e300))

    def expected_unique(self, draws: float) -> float:
        p = self.probability.clamp(0, 1)
        return float((1 - torch.exp(float(draws) * torch.log1p(-p))).sum())

    def kept(self, eps: float) -> int:  # k_l(eps)
        if self.total <= 0:
            return 1
        unique = self.expected_unique(self.sample_size(eps))
        return int(min(max(math.ceil(unique - 1e-9), 1), self.group.size))


def _json_number(value: int) -> int | float:
    """An integer JSON readers can hold (beyond 2^53 as a float)."""
    return value if value < 2**53 else float(value)


def _draws_for(layer: _Layer, kept: int) -> int:
    """The smallest m' whose expected number of distinct channels reaches ``kept``."""
    low, high = 1, 1
    while layer.expected_unique(high) < kept - 1e-9 and high < 1 << 60:
        low, high = high, high * 2
    while low < high:
        middle = (low + high) // 2
        if layer.expected_unique(middle) >= kept - 1e-9:
            high = middle
        else:
            low = middle + 1
    return high


# -- the method -----------------------------------------------------------------------------------
@register_method
class ProvableFilterPruning(PruningMethod):
    name = "pfp"
    summary = "data-informed sensitivities, importance sampling, one eps (Liebenwein et al. 2020)"
    needs_data = True

    def __init__(
        self,
        seed: int = 0,
        selection: str = "deterministic",
        sample_size: int | None = None,  # |S|; None: the paper's formula
        delta: float = 1e-16,  # failure probability of each layer's guarantee
        c_constant: float = 3.0,
        delta_sample: float = 1e-16,  # failure probability in the formula for |S|
        certificate_images: int = 256,  # held-out images for the certificate's measured error
        budget: str = "eps",  # "engine": PFP's ranking, the engine's per-layer allocation
    ) -> None:
        super().__init__(seed)
        if selection not in SELECTIONS:
            raise SecateursError(f"PFP selection is one of {', '.join(SELECTIONS)}")
        if budget not in BUDGETS:
            raise SecateursError(f"PFP budget is one of {', '.join(BUDGETS)}, not {budget!r}")
        if budget == "engine" and selection != "deterministic":
            raise SecateursError("PFP's randomized selection needs budget=eps")
        for name, value in (("delta", delta), ("delta_sample", delta_sample)):
            if not 0 < value < 1:
                raise SecateursError(f"PFP's {name} must be in (0, 1), not {value}")
        if c_constant <= 0:
            raise SecateursError(f"PFP's c_constant must be positive, not {c_constant}")
        if sample_size is not None and sample_size < 1:
            raise SecateursError(f"PFP's sample_size must be at least 1 image, not {sample_size}")
        if certificate_images < 0:
            raise SecateursError(f"PFP's certificate_images must be >= 0, not {certificate_images}")
        self.budget = budget
        self.selection = selection
        self.sample_size = sample_size
        self.delta = delta
        self.c_constant = c_constant
        self.delta_sample = delta_sample
        self.certificate_images = certificate_images

    # -- scoring -----------------------------------------------------------------------------------
    def _sample_count(self, graph: ChannelGraph, data: ScoringData) -> int:
        wanted = self.sample_size or default_sample_size(
            graph.model, graph.input_size, self.delta_sample
        )
        return min(wanted, _available(data))

    def _layers(self, graph: ChannelGraph, data: ScoringData) -> list[_Layer]:
        if not data.batches:
            raise SecateursError("pfp needs data batches to compute sensitivities")
        self.images_used_ = self._sample_count(graph, data)
        readers = {m.name: m.module for g in graph.prunable_groups for m in consumers(g)}
        stats = measure_sensitivities(graph.model, readers, data, self.images_used_)
        layers = []
        for group in graph.prunable_groups:
            score = torch.zeros(group.size, dtype=torch.float64)
            positions, kappa = 1, 1
            for member in consumers(group):
                layer = stats[member.name]
                values = layer.sensitivity.double()[member.indices]
                root = torch.tensor(member.root_indices, dtype=torch.long)
                score = score.scatter_reduce(0, root, values, "amax")  # max over consumers
                positions, kappa = max(positions, layer.positions), max(kappa, layer.kappa)
            if not consumers(group):
                log.warning("pfp: group %s has no consumer layer; all channels score 1", group.root)
                score.fill_(1.0)
            alpha = 2 * self.c_constant * math.log(8 * (positions + 1) * kappa / self.delta)
            layers.append(_Layer(group, score, alpha, positions, kappa))
        return layers

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        return {layer.group.root: layer.sensitivity for layer in self._layers(graph, data)}

    # -- plans -------------------------------------------------------------------------------------
    def _counts(self, layers: list[_Layer], eps: float, allocation: Allocation) -> list[int]:
        return [kept_count(layer.group, layer.kept(eps), allocation) for layer in layers]

    def _plan_for(self, layers: list[_Layer], eps: float, allocation: Allocation) -> PruningPlan:
        """Deterministic: top-k_l by sensitivity. Randomized: multinomial draws, reweighted."""
        counts = self._counts(layers, eps, allocation)
        plan = PruningPlan()
        rng = np.random.default_rng(self.seed)  # the plan is a function of (eps, seed)
        for layer, kept in zip(layers, counts, strict=True):
            size = layer.group.size
            if kept >= size:
                continue
            order = torch.argsort(layer.sensitivity, descending=True, stable=True)
            if self.selection == "deterministic":
                plan.removals[layer.group.root] = sorted(order[kept:].tolist())
                continue
            draws = _draws_for(layer, kept)
            probability = layer.probability.numpy()
            drawn = rng.multinomial(draws, probability / probability.sum())
            factors = {
                int(j): float(drawn[j] / (draws * probability[j])) for j in np.flatnonzero(drawn)
            }
            # min_channels / round_to may ask for more: top channels not drawn, unscaled
            floor = kept_count(layer.group, len(factors), allocation)
            for j in order.tolist():
                if len(factors) >= floor:
                    break
                factors.setdefault(j, 1.0)
            plan.removals[layer.group.root] = sorted(set(range(size)) - set(factors))
            for member in consumers(layer.group):
                scales = plan.input_scales.setdefault(member.name, {})
                for index, root in zip(member.indices, member.root_indices, strict=True):
                    if root in factors and factors[root] != 1.0:
                        scales[int(index)] = float(factors[root])
        return plan

    def _predicted(self, allocator: Allocator, layers, counts, kind: str) -> float:
        masks = {}
        for layer, kept in zip(layers, counts, strict=True):
            mask = torch.zeros(layer.group.size, dtype=torch.bool)
            mask[kept:] = True  # the cost depends on the count only
            masks[layer.group.root] = mask
        predicted = allocator.cost_model.predict(masks)[kind]
        return predicted / (
            allocator.cost_model.macs if kind == "macs" else allocator.cost_model.params
        )

    def _solve_eps(self, allocator, layers, allocation, kind: str, ratio: float) -> float:
        """The eps whose predicted ratio is the largest not above ``ratio`` (Brent's method on
        log eps; the ratio is a step function of eps, so every evaluation is remembered)."""
        seen: dict[float, float] = {}

        def excess(log_eps: float) -> float:
            if log_eps not in seen:
                counts = self._counts(layers, math.exp(log_eps), allocation)
                seen[log_eps] = self._predicted(allocator, layers, counts, kind)
            return seen[log_eps] - ratio

        low, high = LOG_EPS_RANGE
        if excess(low) > 0 and excess(high) <= 0:
            brentq(excess, low, high, xtol=1e-9, rtol=1e-12, maxiter=200)
        meeting = [(r, x) for x, r in seen.items() if r <= ratio]
        if not meeting:
            return math.exp(high)  # the harshest plan; the caller reports
        return math.exp(max(meeting, key=lambda item: (item[0], -item[1]))[1])

    def plan(
        self,
        graph: ChannelGraph,
        data: ScoringData | None,
        target: Target,
        allocation: Allocation,
    ) -> tuple[PruningPlan, float]:
        data = data or ScoringData()
        if not data.batches:
            raise SecateursError(f"method {self.name!r} needs data: pass --data")
        if self.budget == "engine":
            # an ablation: sensitivities ranked by the engine's global or uniform allocation
            # instead of the eps budget; there is no eps, hence no certificate
            self.eps_, self.certificate_ = None, []
            return super().plan(graph, data, target, allocation)
        layers = self._layers(graph, data)
        allocator = Allocator(graph, {x.group.root: x.sensitivity for x in layers}, allocation)
        asked, internal = target.ratio, target.ratio
        lowest = allocator.measured_ratio(
            self._plan_for(layers, math.exp(LOG_EPS_RANGE[1]), allocation), target.kind
        )
        if lowest > asked * (1 + allocation.tolerance):
            raise SecateursError(
                f"a {target.kind} ratio of {asked:g} cannot be met without emptying a layer: "
                f"the most PFP can prune leaves {lowest:.3f}"
            )
        best: tuple[float, PruningPlan, float, float] | None = None
        for _ in range(max(allocation.max_corrections, 8)):
            eps = self._solve_eps(allocator, layers, allocation, target.kind, internal)
            plan = self._plan_for(layers, eps, allocation)
            achieved = allocator.measured_ratio(plan, target.kind)
            error = abs(achieved / asked - 1)
            if best is None or error < best[0]:
                best = (error, plan, achieved, eps)
            if error <= allocation.tolerance:
                break
            internal = min(0.999, max(1e-4, internal * asked / achieved))
        assert best is not None
        _, plan, achieved, eps = best
        self.eps_ = eps
        self.certificate_ = self._certificate(graph, data, layers, plan, eps, allocation)
        log.info("pfp: eps %.4g, %s ratio %.4f (asked %.4f)", eps, target.kind, achieved, asked)
        return plan, achieved

    # -- certificate -------------------------------------------------------------------------------
    def _certificate(self, graph, data, layers, plan, eps, allocation) -> list[dict]:
        held_out = min(self.certificate_images, _available(data) - self.images_used_)
        errors = measure_layer_errors(graph, plan, data, self.images_used_, held_out)
        rows = []
        for layer, kept in zip(layers, self._counts(layers, eps, allocation), strict=True):
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
                    "delta": self.delta,
                    "m": _json_number(layer.sample_size(eps)),
                    "k": kept,
                    "S_l": layer.total,
                    "sample_images": self.images_used_,
                    "held_out_images": held_out,
                    "error_max": max((e[0] for e in found), default=None),
                    "error_l2": max((e[1] for e in found), default=None),
                    "bound": eps,
                }
            )
        return rows


def measure_layer_errors(
    graph: ChannelGraph, plan: PruningPlan, data: ScoringData, start: int, count: int
) -> dict[str, tuple[float, float]]:
    """For every consumer layer whose input the plan changes, on images ``start`` to
    ``start + count``: max over images, units and positions of |z_hat - z| / (|W| * |a|), and the
    relative L2 error ||z_hat - z|| / ||z|| (z = W * a without bias, each layer in isolation)."""
    factors: dict[str, Tensor] = {}
    for group in graph.prunable_groups:
        removed = set(plan.removals.get(group.root, []))
        if not removed:
            continue
        for member in consumers(group):
            vector = factors.setdefault(member.name, torch.ones(member.module.weight.shape[1]))
            for index, root in zip(member.indices, member.root_indices, strict=True):
                if root in removed:
                    vector[index] = 0.0
    for name, scales in plan.input_scales.items():
        if name in factors:
            for index, value in scales.items():
                factors[name][index] *= value
    if count <= 0 or not factors:
        return {}
    totals: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in factors}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            a = inputs[0].detach().float()
            shape = [1] * a.ndim
            shape[-1 if isinstance(module, nn.Linear) else 1] = -1
            change = a * (factors[name].view(shape) - 1)  # a_hat - a
            weight = module.weight.detach().float()
            if isinstance(module, nn.Linear):
                diff, scale = F.linear(change, weight), F.linear(a.abs(), weight.abs())
                exact = F.linear(a, weight)
            else:
                args = (module.stride, _padding(module), module.dilation)
                diff = F.conv2d(change, weight, None, *args)
                scale = F.conv2d(a.abs(), weight.abs(), None, *args)
                exact = F.conv2d(a, weight, None, *args)
            ratio = torch.where(scale > FLOAT_EPS, diff.abs() / scale, torch.zeros(()))
            entry = totals[name]
            entry[0] = max(entry[0], float(ratio.max()))
            entry[1] += float(diff.pow(2).sum())
            entry[2] += float(exact.pow(2).sum())

        return record

    model = graph.model
    handles = [graph.module(name).register_forward_hook(hook(name)) for name in factors]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for images in _images(data, start, count):
                model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {
        name: (worst, math.sqrt(diff / exact) if exact > 0 else 0.0)
        for name, (worst, diff, exact) in totals.items()
    }
