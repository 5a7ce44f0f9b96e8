"""SPP's rank-based probability increment (Wang, Zhang, Wang, Hu, "Structured Probabilistic
Pruning for Convolutional Neural Network Acceleration", BMVC 2018, Eqn 3).

A pure function of a group's rank among the layer's still-unpruned groups (rank 0 = the smallest
L1 norm). With ``N_rem`` groups still to prune in the layer:

    alpha    = log(2 / u) / N_rem
    N_c      = -log(u) / alpha                              (the symmetry point)
    delta(r) = A * exp(-alpha * r)                          if r <= N_c
             = 2 u A - A * exp(-alpha * (2 N_c - r))        if r >  N_c

so delta(0) = A, delta(N_c) = u A, delta(N_rem) = 0, and delta < 0 beyond N_rem: the groups ranked
past the ones still to prune see their probability fall back. The curve is point-symmetric about
(N_c, u A).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_A = 0.05  # increment of the least important group per update
DEFAULT_U = 0.25  # delta(N_c) = u * A


def _curve(u: float, remaining: int) -> tuple[float, float]:
    """alpha and the centre rank N_c of the increment function for ``remaining`` groups."""
    if remaining < 1:
        raise ValueError(f"the increment needs at least one group to prune, not {remaining}")
    if not 0 < u < 1:
        raise ValueError(f"u must lie in (0, 1), not {u}")
    alpha = math.log(2 / u) / remaining
    return alpha, -math.log(u) / alpha


def increment(rank: float, A: float, u: float, remaining: int) -> float:
    """delta(rank) for a layer with ``remaining`` (N_rem >= 1) groups still to prune."""
    alpha, centre = _curve(u, remaining)
    if rank <= centre:
        return A * math.exp(-alpha * rank)
    return 2 * u * A - A * math.exp(-alpha * (2 * centre - rank))


def increments(count: int, A: float, u: float, remaining: int) -> Tensor:
    """delta(r) for ranks r = 0 .. count - 1, as float64 (the same formula, vectorised)."""
    alpha, centre = _curve(u, remaining)
    rank = torch.arange(count, dtype=torch.float64, device="cpu")
    low = A * torch.exp(-alpha * rank)
    high = 2 * u * A - A * torch.exp(-alpha * (2 * centre - rank))
    return torch.where(rank <= centre, low, high)
