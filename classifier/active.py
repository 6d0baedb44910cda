"""Active labelling: which unlabelled prompts to send to the judge first (near the threshold, or spread)."""

from __future__ import annotations

from typing import Literal

import numpy as np

Strategy = Literal["uncertainty", "diverse", "typical", "random"]
STRATEGIES: tuple[Strategy, ...] = ("diverse", "typical", "uncertainty", "random")


def uncertainty_order(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Indices, closest to the threshold first: the decisions a label is most likely to change."""
    return np.argsort(np.abs(np.asarray(scores) - np.asarray(thresholds)), kind="stable")


def diverse_order(
    vectors: np.ndarray, labelled: np.ndarray | None = None, count: int | None = None
) -> np.ndarray:
    """Indices of `vectors` (L2-normalised rows) in farthest-first order (k-centre greedy): each next one is
    the prompt least similar to everything already labelled or picked, so labels spread over the embedding
    space instead of piling up in its densest region. The first `count` (default: all) are returned."""
    n = len(vectors)
    count = n if count is None else min(count, n)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    order: list[int] = []
    if labelled is not None and len(labelled):
        nearest = np.max(vectors @ labelled.T, axis=1)  # similarity to the closest labelled prompt
    else:
        order.append(int(np.argmax(vectors @ vectors.mean(axis=0))))  # no labels yet: the most central one
        nearest = vectors @ vectors[order[0]]
        nearest[order[0]] = np.inf
    return _continue(vectors, nearest, order, count)


def _continue(vectors: np.ndarray, nearest: np.ndarray, order: list[int], count: int) -> np.ndarray:
    nearest = nearest.copy()
    while len(order) < count:  # O(count * n): fine for the tens of thousands of prompts of a log
        pick = int(np.argmin(nearest))
        order.append(pick)
        nearest = np.maximum(nearest, vectors @ vectors[pick])
        nearest[pick] = np.inf
    return np.asarray(order, dtype=np.int64)


def typical_order(
    vectors: np.ndarray, labelled: np.ndarray | None = None, count: int | None = None, seed: int = 0
) -> np.ndarray:
    """Indices of `vectors` (L2-normalised rows), the most typical prompt of each of the largest clusters
    first (TypiClust, Hacohen et al., "Active Learning on a Budget", ICML 2022): k-means into `count`
    clusters (default: 100), the clusters that hold already labelled prompts skipped, then by size; in each,
    the prompt with the highest typicality (inverse mean distance to its 20 nearest cluster-mates). A small
    budget then labels the dense regions of the traffic, one prompt each, instead of the outliers that
    farthest-first reaches first. The rest continue farthest-first (diverse_order)."""
    from sklearn.cluster import MiniBatchKMeans

    n = len(vectors)
    count = min(n, 100 if count is None else count)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    clusters = MiniBatchKMeans(n_clusters=count, random_state=seed, n_init=3, batch_size=2048)
    assignment = clusters.fit_predict(vectors)
    taken = set() if labelled is None or not len(labelled) else set(clusters.predict(labelled).tolist())
    sizes = np.bincount(assignment, minlength=count)
    order: list[int] = []
    for cluster in sorted(range(count), key=lambda c: (c in taken, -sizes[c], c)):
        members = np.flatnonzero(assignment == cluster)
        if not len(members):
            continue
        order.append(int(members[np.argmax(_typicality(vectors[members]))]))
    seen = vectors[order] if labelled is None or not len(labelled) else np.vstack([vectors[order], labelled])
    nearest = np.max(vectors @ seen.T, axis=1)  # similarity to the closest picked or labelled prompt
    nearest[order] = np.inf
    return _continue(vectors, nearest, order, n)


def _typicality(members: np.ndarray, neighbours: int = 20, rows: int = 1024) -> np.ndarray:
    """1 / (mean distance to the `neighbours` nearest other members); a lone member is typical. Computed
    `rows` members at a time, so a cluster of n members holds `rows` x n distances, never n x n."""
    if len(members) == 1:
        return np.ones(1)
    k = min(neighbours, len(members) - 1)
    mean = np.empty(len(members))
    for start in range(0, len(members), rows):
        block = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * members[start : start + rows] @ members.T))
        closest = np.partition(block, k, axis=1)[:, : k + 1]  # itself (distance 0) and its k nearest
        mean[start : start + rows] = (closest.sum(axis=1) - closest.min(axis=1)) / k
    return 1.0 / (mean + 1e-9)
