"""SG-CNN's self-grouping of one layer: filters clustered by what they read, then the input
channels each group keeps at a connection sparsity cp.

For a convolution with weight W (C_out, C_in, kh, kw):

    V[i, c] = sum_{h, w} |W[i, c, h, w]|             the importance vector of filter i
    labels, centroids = KMeans(G).fit(V)              filters grouped by what they read
    score[g, c] = centroid[g, c] * kept[g, c]         kept: share of g's filters still reading c
    the lowest-scoring (g, c) pairs are pruned until cp of the layer's connections are gone;
    every filter of group g reads the channels g keeps

A connection is one (filter, input channel) kernel. Pruning (g, c) removes |g| connections at once,
so the achieved sparsity is the smallest one >= cp that whole pairs allow (over by less than one
group's size); every group keeps at least one channel.

Clustering is made independent of filter order: the rows of V are sorted before k-means (seeded,
several initialisations) and the labels numbered by each group's first filter in that order.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor

from secateurs.errors import SecateursError
from secateurs.pruning.compaction.layer_groups import LayerGroups


def importance_vectors(weight: Tensor) -> Tensor:
    """V[i, c] = sum over the kernel of |W[i, c]| (float64); |W[i, c]| for a linear layer."""
    magnitude = weight.detach().abs().double()
    return magnitude if magnitude.ndim == 2 else magnitude.flatten(2).sum(2)


def cluster_filters(vectors: Tensor, groups: int, seed: int, inits: int = 10) -> list[int]:
    """k-means labels of the rows of ``vectors``; the same for any order of the rows."""
    count = vectors.shape[0]
    if not 1 <= groups <= count:
        raise SecateursError(f"cannot make {groups} groups of {count} filters")
    rows = vectors.cpu().numpy()
    order = np.lexsort(rows.T[::-1])  # rows sorted lexicographically: a canonical order
    if groups == 1:
        return [0] * count
    kmeans = KMeans(n_clusters=groups, n_init=inits, random_state=seed)
    sorted_labels = kmeans.fit_predict(rows[order])
    renumber: dict[int, int] = {}
    labels = [0] * count
    for position, filter_index in enumerate(order):
        label = int(sorted_labels[position])
        labels[int(filter_index)] = renumber.setdefault(label, len(renumber))
    return labels


def group_connections(
    vectors: Tensor, labels: list[int], sparsity: float, kept_before: Tensor | None = None
) -> Tensor:
    """keep (C_out, C_in): each group reads the channels whose centroid x kept-share scores
    highest, so that at least ``sparsity`` of the layer's connections are pruned."""
    count, channels = vectors.shape
    device = vectors.device
    label_tensor = torch.tensor(labels, device=device)
    kept_before = (
        torch.ones(count, channels, dtype=torch.bool, device=device)
        if kept_before is None
        else kept_before
    )
    group_ids = sorted(set(labels))
    sizes = [int((label_tensor == g).sum()) for g in group_ids]
    centroids = torch.stack([vectors[label_tensor == g].mean(0) for g in group_ids])
    shares = torch.stack([kept_before[label_tensor == g].double().mean(0) for g in group_ids])
    scores = centroids * shares  # (G, C_in)
    goal = sparsity * count * channels
    group_keep = torch.ones(len(group_ids), channels, dtype=torch.bool, device=device)
    pruned = 0
    # lowest first; ties by group then channel, so the result is deterministic
    for flat in torch.argsort(scores.flatten(), stable=True).tolist():
        if pruned >= goal - 1e-9:
            break
        g, c = divmod(flat, channels)
        if int(group_keep[g].sum()) == 1:
            continue  # every group reads at least one channel
        group_keep[g, c] = False
        pruned += int(sizes[g])
    index = torch.tensor([group_ids.index(label) for label in labels], device=device)
    return group_keep[index]


def regroup(
    weight: Tensor,
    groups: int,
    sparsity: float,
    seed: int,
    kept: Tensor | None,
    balanced: bool = False,
    vectors: Tensor | None = None,
) -> LayerGroups:
    """One SG-CNN stage on one layer: cluster its filters, then choose each group's inputs;
    ``balanced``: equal groups reading equally many channels (no padding in the grouped form);
    ``vectors``: importance vectors (C_out, C_in) to use instead of the weights' magnitude."""
    vectors = importance_vectors(weight) if vectors is None else vectors.double()
    if kept is not None:
        vectors = vectors * kept  # pruned connections read nothing
    groups = min(groups, vectors.shape[0])
    if balanced:
        labels = balanced_labels(vectors, groups, seed)
        return LayerGroups(labels, balanced_connections(vectors, labels, sparsity))
    labels = cluster_filters(vectors, groups, seed)
    return LayerGroups(labels, group_connections(vectors, labels, sparsity, kept))


def balanced_labels(vectors: Tensor, groups: int, seed: int, rounds: int = 10) -> list[int]:
    """k-means with equal group sizes (sizes differ by at most one): the k-means labels, then
    rounds of centroids and an optimal equal-size assignment of filters to them (Hungarian
    method on each centroid repeated as many times as its group has slots)."""
    from scipy.optimize import linear_sum_assignment

    labels = cluster_filters(vectors, groups, seed)
    count = vectors.shape[0]
    slots = [g for g in range(groups) for _ in range(count // groups + (g < count % groups))]
    for _ in range(rounds):
        label_tensor = torch.tensor(labels, device=vectors.device)
        centroids = torch.stack(
            [
                vectors[label_tensor == g].mean(0)
                if bool((label_tensor == g).any())
                else vectors.mean(0)
                for g in range(groups)
            ]
        )
        distances = torch.cdist(vectors, centroids)[:, slots].cpu().numpy()
        _, columns = linear_sum_assignment(distances)
        new = [slots[int(column)] for column in columns]
        if new == labels:
            break
        labels = new
    return labels


def balanced_connections(vectors: Tensor, labels: list[int], sparsity: float) -> Tensor:
    """keep (C_out, C_in) where every group reads the same number of channels, its centroid's
    top round((1 - sparsity) C_in) (at least one): the grouped form then needs no padding."""
    count, channels = vectors.shape
    label_tensor = torch.tensor(labels, device=vectors.device)
    reads = max(1, round((1 - sparsity) * channels))
    keep = torch.zeros(count, channels, dtype=torch.bool, device=vectors.device)
    for group in sorted(set(labels)):
        members = label_tensor == group
        centroid = vectors[members].mean(0)
        # highest first; ties by channel index, so the result is deterministic
        order = torch.argsort(-centroid, stable=True)[:reads]
        keep[torch.nonzero(members).flatten()[:, None], order[None, :]] = True
    return keep
