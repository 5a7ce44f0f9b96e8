"""Provable Filter Pruning (Liebenwein, Baykal, Lang, Feldman, Rus; "Provable Filter Pruning for
Efficient Neural Networks", ICLR 2020).

PFP scores the *input* channels of the layers that read a group's channels (its consumers): a
channel matters as much as the largest share it ever takes of a consumer's output. With the
consumer's weights split into W+ (positive) and W- (negative), input a >= 0 (after BN and ReLU;
a signed input is split into two non-negative data points, a+ and a-), z+ = W+ * a, z- = W- * a:

    g_jk(x, i, p) = max(w+_ijk a_jk(x, p) / z+_i(x, p),  w-_ijk a_jk(x, p) / z-_i(x, p))
    s_j           = max over images x in S, output units i, positions p and kernel offsets k

(|z| <= float32 eps counts as infinite: ratio 0). Saturated channels (s_j = 1 within float32
rounding: common with the default |S| of ~180 images) are ordered among themselves by t_j, the
channel's largest share of an output unit averaged over images and units, a statistic of the same
data; the sampling maths keep s_j. A coupled group (a residual stream, several
consumers) takes the maximum of its consumers' sensitivities. Sampling: p_j = s_j / S_l,
S_l = sum_j s_j, and for a tolerance eps shared by all layers

    alpha_l = 2 C ln(8 (P_l + 1) kappa_l / delta)         C = 3, delta = 1e-16
    m_l     = ceil(3 (6 + 2 eps) S_l alpha_l / eps^2)      P_l positions, kappa_l kernel size
    k_l     = clip(ceil(sum_j 1 - (1 - p_j)^m_l), 1, C_l)  expected distinct channels drawn

``selection="deterministic"`` (the authors' released configurations) keeps the top-k_l channels
by s; ``"randomized"`` (the paper's algorithm) draws counts ~ Multinomial(m', p) with m' giving
k_l distinct channels in expectation, keeps those drawn, and rescales the consumers' weights by
count_j / (m' p_j) through the plan's ``input_scales``. eps is solved by bisection on the
predicted cost, then corrected until real surgery on a copy meets the target within tolerance.
The :class:`MethodPlan` that :meth:`ProvableFilterPruning.plan` returns carries the certificate:
per group eps, delta, m_l, k_l, S_l, |S| and the error measured on held-out images next to the
bound eps. Sensitivities and sampling maths are in :mod:`.pfp_sensitivity`, the certificate's
measured error in :mod:`.pfp_certificate`.

``budget="engine"`` is an ablation, not PFP: the sensitivities s_j, ranked by the engine's
allocation (``--strategy global`` or ``uniform``) instead of the eps budget, to tell the ranking's
effect from the per-layer budget's.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import Tensor

from secateurs.device import model_device
from secateurs.errors import SecateursError
from secateurs.pruning.allocation import Allocation, Allocator, Target, kept_count
from secateurs.pruning.graph import ChannelGraph
from secateurs.pruning.methods.base import (
    MethodPlan,
    PlanRequest,
    PruningMethod,
    ScoringData,
    register_method,
)
from secateurs.pruning.methods.pfp_certificate import certificate_rows, measure_layer_errors
from secateurs.pruning.methods.pfp_sensitivity import (
    SampledLayer,
    available_images,
    consumers,
    default_sample_size,
    measure_sensitivities,
)
from secateurs.pruning.plan import PruningPlan

log = logging.getLogger(__name__)
SELECTIONS = ("deterministic", "randomized")
BUDGETS = ("eps", "engine")
LOG_EPS_RANGE = (math.log(1e-8), math.log(1e12))


@register_method
class ProvableFilterPruning(PruningMethod):
    """PFP: sensitivities from |S| images, one eps for all layers, k_l channels kept per group.

    After :meth:`plan`, ``eps_`` is the eps chosen (None with ``budget="engine"``).
    """

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
        _check_params(selection, budget, delta, delta_sample, c_constant, sample_size)
        if certificate_images < 0:
            raise SecateursError(f"PFP's certificate_images must be >= 0, not {certificate_images}")
        self.budget = budget
        self.selection = selection
        self.sample_size = sample_size
        self.delta = delta
        self.c_constant = c_constant
        self.delta_sample = delta_sample
        self.certificate_images = certificate_images

    # -- 1-4: images, sensitivities, coupled groups, alpha_l ---------------------------------------
    def _sample_count(self, graph: ChannelGraph, data: ScoringData) -> int:
        wanted = self.sample_size or default_sample_size(
            graph.model, graph.input_size, self.delta_sample
        )
        return min(wanted, available_images(data))

    def _layers(self, graph: ChannelGraph, data: ScoringData) -> list[SampledLayer]:
        """Every prunable group's s_j (max over its consumers), P_l, kappa_l and alpha_l."""
        self.images_used_ = self._sample_count(graph, data)
        readers = {m.name: m.module for g in graph.prunable_groups for m in consumers(g)}
        stats = measure_sensitivities(graph.model, readers, data, self.images_used_)
        layers = []
        for group in graph.prunable_groups:
            device = model_device(graph.model)
            score = torch.zeros(group.size, dtype=torch.float64, device=device)
            share = torch.zeros(group.size, dtype=torch.float64, device=device)
            positions, kappa = 1, 1
            for member in consumers(group):
                layer = stats[member.name]
                root = torch.tensor(member.root_indices, dtype=torch.long, device=device)
                values = layer.sensitivity.double()[member.indices]
                score = score.scatter_reduce(0, root, values, "amax")  # max over consumers
                share = share.scatter_reduce(0, root, layer.mean_share[member.indices], "amax")
                positions, kappa = max(positions, layer.positions), max(kappa, layer.kappa)
            if not consumers(group):
                log.warning("pfp: group %s has no consumer layer; all channels score 1", group.root)
                score.fill_(1.0)
            alpha = 2 * self.c_constant * math.log(8 * (positions + 1) * kappa / self.delta)
            layers.append(SampledLayer(group, score, alpha, positions, kappa, share))
        return layers

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        """The ranking of every prunable group's channels: s_j, with saturated channels ordered
        by t_j (:attr:`SampledLayer.ranking`)."""
        return {layer.group.root: layer.ranking for layer in self._layers(graph, data)}

    # -- 5-6: one eps, k_l per group, the channels kept --------------------------------------------
    def _counts(self, layers: list[SampledLayer], eps: float, allocation: Allocation) -> list[int]:
        return [kept_count(layer.group, layer.kept(eps), allocation) for layer in layers]

    def _plan_for(
        self, layers: list[SampledLayer], eps: float, allocation: Allocation
    ) -> PruningPlan:
        """Deterministic: top-k_l by sensitivity. Randomized: multinomial draws, reweighted."""
        counts = self._counts(layers, eps, allocation)
        plan = PruningPlan()
        rng = np.random.default_rng(self.seed)  # the plan is a function of (eps, seed)
        for layer, kept in zip(layers, counts, strict=True):
            size = layer.group.size
            if kept >= size:
                continue
            order = torch.argsort(layer.ranking, descending=True, stable=True)
            if self.selection == "deterministic":
                plan.removals[layer.group.root] = sorted(order[kept:].tolist())
                continue
            draws = layer.draws_for(kept)
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

    def _predicted(
        self, allocator: Allocator, layers: list[SampledLayer], counts: list[int], kind: str
    ) -> float:
        masks = {}
        for layer, kept in zip(layers, counts, strict=True):
            mask = torch.zeros(layer.group.size, dtype=torch.bool)
            mask[kept:] = True  # the cost depends on the count only
            masks[layer.group.root] = mask
        predicted = allocator.cost_model.predict(masks)[kind]
        return predicted / (
            allocator.cost_model.macs if kind == "macs" else allocator.cost_model.params
        )

    def _solve_eps(
        self,
        allocator: Allocator,
        layers: list[SampledLayer],
        allocation: Allocation,
        kind: str,
        ratio: float,
    ) -> float:
        """The smallest eps whose predicted ratio is not above ``ratio``: bisection on log eps
        (every k_l, so the predicted cost, only falls as eps grows), to 1e-9 in log eps. Of the
        plateau of eps giving one plan, the smallest is the tightest tolerance the certificate
        can state for it; any root finder stopping inside the plateau would report an eps
        larger than needed."""

        def meets(log_eps: float) -> bool:
            counts = self._counts(layers, math.exp(log_eps), allocation)
            return self._predicted(allocator, layers, counts, kind) <= ratio

        low, high = LOG_EPS_RANGE
        if meets(low) or not meets(high):
            return math.exp(low if meets(low) else high)  # harshest when unreachable: reported
        while high - low > 1e-9:
            middle = (low + high) / 2
            low, high = (low, middle) if meets(middle) else (middle, high)
        return math.exp(high)

    def _allocate(self, request: PlanRequest) -> MethodPlan:
        """The eps budget: solve eps on the predicted cost, correct it on the measured one, and
        certify the plan. ``budget="engine"`` and per-layer ratios rank the sensitivities with
        the engine's allocation instead (deterministic, no eps, no certificate)."""
        graph, data, target, allocation = request
        self.eps_: float | None = None
        if self.budget == "engine" or not isinstance(target, Target):
            if self.selection != "deterministic":
                log.warning("pfp: per-layer ratios keep the top channels; no randomized draws")
            return super()._allocate(request)
        layers = self._layers(graph, data)
        allocator = Allocator(graph, {x.group.root: x.ranking for x in layers}, allocation)
        plan, achieved, eps = self._meet(allocator, layers, target, allocation)
        self.eps_ = eps
        log.info(
            "pfp: eps %.4g, %s ratio %.4f (asked %.4f)", eps, target.kind, achieved, target.ratio
        )
        held_out = min(self.certificate_images, available_images(data) - self.images_used_)
        errors = measure_layer_errors(graph, plan, data, self.images_used_, held_out)
        counts = self._counts(layers, eps, allocation)
        images = (self.images_used_, held_out)
        randomized = self.selection == "randomized"
        rows = certificate_rows(layers, counts, plan, eps, self.delta, images, errors, randomized)
        return MethodPlan(plan, achieved, rows, self.selection)

    def _meet(
        self,
        allocator: Allocator,
        layers: list[SampledLayer],
        target: Target,
        allocation: Allocation,
    ) -> tuple[PruningPlan, float, float]:
        """(plan, measured ratio, eps) closest to ``target``: the internal target is corrected by
        asked / achieved until real surgery on a copy is within the tolerance."""
        asked, internal = target.ratio, target.ratio
        harshest = self._plan_for(layers, math.exp(LOG_EPS_RANGE[1]), allocation)
        lowest = allocator.measured_ratio(harshest, target.kind)
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
        return best[1], best[2], best[3]


def _check_params(
    selection: str,
    budget: str,
    delta: float,
    delta_sample: float,
    c_constant: float,
    sample_size: int | None,
) -> None:
    """PFP's hyperparameters, or a SecateursError naming the first one out of range."""
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
