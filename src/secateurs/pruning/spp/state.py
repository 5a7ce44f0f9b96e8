"""SPP's learned state: a pruning probability per weight group, and which groups are gone.

One update (every ``interval`` training iterations, driven by the callback), per layer not yet
done:

1. rank the still-unpruned groups by the L1 norm of their weights, ascending (rank 0 = least
   important; ties broken by index, so the order is deterministic);
2. ``p <- clip(p + delta(rank; A, u, N_rem), 0, 1)`` with ``N_rem = ceil(R_l N) - n_pruned``
   (:func:`secateurs.pruning.spp.schedule.increment`);
3. groups at ``p == 1`` are pruned for good and leave the ranking; at most ``N_rem`` of them in one
   update (the lowest ranked first), so a layer never overshoots its target;
4. a layer is done when ``ceil(R_l N)`` of its groups are pruned: its surviving groups go back to
   ``p = 0`` and its mask is fixed. Pruning is over when every layer is done.

A layer never loses all its groups: the target count is capped at ``N - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from secateurs.errors import SecateursError
from secateurs.pruning.spp.groups import WeightGroups
from secateurs.pruning.spp.schedule import DEFAULT_A, DEFAULT_U, increments

CPU = torch.device("cpu")  # the schedule's bookkeeping: per-channel numbers, moved to the
# model's device only where they meet its parameters (WeightGroups.masks)


class SPPState:
    """Probabilities (float64) and pruned flags (bool) of ``layers``; ``ratios[i]`` = R_l."""

    def __init__(
        self,
        layers: Sequence[WeightGroups],
        ratios: Sequence[float],
        A: float = DEFAULT_A,
        u: float = DEFAULT_U,
    ) -> None:
        if len(layers) != len(ratios):
            raise SecateursError(f"{len(layers)} layers but {len(ratios)} target ratios")
        for layer, ratio in zip(layers, ratios, strict=True):
            if not 0 <= ratio < 1:
                raise SecateursError(f"target ratio of {layer.name} must be in [0, 1): {ratio}")
        self.layers, self.ratios, self.A, self.u = list(layers), list(ratios), A, u
        self.probability = [
            torch.zeros(layer.size, dtype=torch.float64, device=CPU) for layer in layers
        ]
        self.pruned = [torch.zeros(layer.size, dtype=torch.bool, device=CPU) for layer in layers]
        self.done = [self.target_count(i) == 0 for i in range(len(layers))]

    # -- queries --------------------------------------------------------------------------------
    def target_count(self, index: int) -> int:
        """ceil(R_l N), at most N - 1 (the tolerance absorbs float error in R_l N)."""
        size = self.layers[index].size
        return min(math.ceil(self.ratios[index] * size - 1e-9), size - 1)

    @property
    def over(self) -> bool:
        return all(self.done)

    def fixed_keep(self, index: int) -> Tensor:
        return ~self.pruned[index]

    def draw(self, generator: torch.Generator) -> list[Tensor]:
        """One Monte Carlo keep vector per layer: keep ~ Bernoulli(1 - p), one draw per group;
        pruned groups always dropped. Done layers draw nothing (their mask is fixed)."""
        keeps = []
        for index, probability in enumerate(self.probability):
            if self.done[index]:
                keeps.append(self.fixed_keep(index))
                continue
            uniform = torch.rand(
                probability.shape, generator=generator, dtype=torch.float64, device=CPU
            )
            keeps.append((uniform >= probability) & ~self.pruned[index])
        return keeps

    def pruned_ratios(self) -> dict[str, float]:
        return {
            layer.name: float(pruned.float().mean())
            for layer, pruned in zip(self.layers, self.pruned, strict=True)
        }

    # -- the update -----------------------------------------------------------------------------
    def update(self) -> list[Tensor]:
        """One probability update of every layer not done; returns the newly pruned groups."""
        newly = []
        for index in range(len(self.layers)):
            newly.append(
                torch.zeros(self.layers[index].size, dtype=torch.bool, device=CPU)
                if self.done[index]
                else self._update_layer(index)
            )
        return newly

    def _update_layer(self, index: int) -> Tensor:
        probability, pruned = self.probability[index], self.pruned[index]
        remaining = self.target_count(index) - int(pruned.sum())
        alive = torch.nonzero(~pruned).flatten()
        scores = self.layers[index].scores()[alive]
        order = torch.argsort(scores, stable=True)  # alive positions, least important first
        delta = torch.empty(len(alive), dtype=torch.float64)
        delta[order] = increments(len(alive), self.A, self.u, remaining)
        updated = (probability[alive] + delta).clamp(0.0, 1.0)
        probability[alive] = updated
        reached = alive[order][(updated[order] >= 1.0)][:remaining]  # lowest ranks first
        newly = torch.zeros_like(pruned)
        newly[reached] = True
        pruned |= newly
        if int(pruned.sum()) >= self.target_count(index):
            self.done[index] = True
            probability[~pruned] = 0.0  # survivors are kept for good
        probability[pruned] = 1.0
        return newly

    def prune_now(self) -> list[Tensor]:
        """Deterministic one-shot pruning (the baseline SPP is compared with): every layer loses
        its ``ceil(R_l N)`` groups of smallest L1 norm at once and is done. Returns the newly
        pruned groups."""
        newly = []
        for index, layer in enumerate(self.layers):
            fresh = torch.zeros(layer.size, dtype=torch.bool, device=CPU)
            remaining = self.target_count(index) - int(self.pruned[index].sum())
            if not self.done[index] and remaining > 0:
                alive = torch.nonzero(~self.pruned[index]).flatten()
                order = torch.argsort(layer.scores()[alive], stable=True)
                fresh[alive[order[:remaining]]] = True
            self.pruned[index] |= fresh
            self.probability[index] = self.pruned[index].double()
            self.done[index] = True
            newly.append(fresh)
        return newly

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "names": [layer.name for layer in self.layers],
            "ratios": list(self.ratios),
            "probability": [p.clone() for p in self.probability],
            "pruned": [p.clone() for p in self.pruned],
            "done": list(self.done),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [layer.name for layer in self.layers]
        if list(state["names"]) != names:
            raise SecateursError(
                "the SPP checkpoint was made for other layers: resume the same run"
            )
        sizes = [layer.size for layer in self.layers]
        if [len(p) for p in state["probability"]] != sizes:
            raise SecateursError(
                "the SPP checkpoint was made with another granularity (its layers have other "
                "group counts): resume with the run's --granularity"
            )
        self.ratios = [float(r) for r in state["ratios"]]
        self.probability = [p.clone().double() for p in state["probability"]]
        self.pruned = [p.clone().bool() for p in state["pruned"]]
        self.done = [bool(d) for d in state["done"]]
