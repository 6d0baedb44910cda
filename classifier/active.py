"""Active labelling: which unlabelled prompts to send to the judge first (near the threshold, or spread)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
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
    """The first `count` (default: all) indices of `diverse_picks`."""
    return _take(diverse_picks(vectors, labelled), len(vectors) if count is None else count)


def diverse_picks(vectors: np.ndarray, labelled: np.ndarray | None = None) -> Iterator[int]:
    """Indices of `vectors` (L2-normalised rows) in farthest-first order (k-centre greedy): each next one is
    the prompt least similar to everything already labelled or picked, so labels spread over the embedding
    space instead of piling up in its densest region. Lazy: each pick costs one pass over the vectors, so a
    caller that stops after k pays O(k * n), not O(n^2)."""
    if not len(vectors):
        return iter(())
    if labelled is not None and len(labelled):
        return _farthest_first(vectors, np.max(vectors @ labelled.T, axis=1), [])
    first = int(np.argmax(vectors @ vectors.mean(axis=0)))  # no labels yet: the most central one
    nearest = vectors @ vectors[first]
    nearest[first] = np.inf
    return _farthest_first(vectors, nearest, [first])


def _farthest_first(vectors: np.ndarray, nearest: np.ndarray, picked: list[int]) -> Iterator[int]:
    """`picked`, then the rest farthest-first; `nearest` is each row's similarity to the closest one
    labelled or picked (np.inf for the picked)."""
    yield from picked
    nearest = nearest.copy()
    for _ in range(len(vectors) - len(picked)):
        pick = int(np.argmin(nearest))
        yield pick
        nearest = np.maximum(nearest, vectors @ vectors[pick])
        nearest[pick] = np.inf


def _take(picks: Iterator[int], count: int) -> np.ndarray:
    return np.fromiter(itertools.islice(picks, max(count, 0)), dtype=np.int64)


def typical_order(
    vectors: np.ndarray, labelled: np.ndarray | None = None, count: int | None = None, seed: int = 0
) -> np.ndarray:
    """All indices of `typical_picks` with `count` clusters."""
    return _take(typical_picks(vectors, labelled, count, seed), len(vectors))


def typical_picks(
    vectors: np.ndarray, labelled: np.ndarray | None = None, clusters: int | None = None, seed: int = 0
) -> Iterator[int]:
    """Indices of `vectors` (L2-normalised rows), the most typical prompt of each of the largest clusters
    first (TypiClust, Hacohen et al., "Active Learning on a Budget", ICML 2022): k-means into `clusters`
    clusters (default: 100), the clusters that hold already labelled prompts skipped, then by size; in each,
    the prompt with the highest typicality (inverse mean distance to its 20 nearest cluster-mates). A small
    budget then labels the dense regions of the traffic, one prompt each, instead of the outliers that
    farthest-first reaches first. The rest continue farthest-first (diverse_picks), lazily."""
    from sklearn.cluster import MiniBatchKMeans

    n = len(vectors)
    k = min(n, 100 if clusters is None else clusters)
    if k == 0:
        return iter(())
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048)
    assignment = kmeans.fit_predict(vectors)
    taken = set() if labelled is None or not len(labelled) else set(kmeans.predict(labelled).tolist())
    sizes = np.bincount(assignment, minlength=k)
    order: list[int] = []
    for cluster in sorted(range(k), key=lambda c: (c in taken, -sizes[c], c)):
        members = np.flatnonzero(assignment == cluster)
        if not len(members):
            continue
        order.append(int(members[np.argmax(_typicality(vectors[members]))]))
    seen = vectors[order] if labelled is None or not len(labelled) else np.vstack([vectors[order], labelled])
    nearest = np.max(vectors @ seen.T, axis=1)  # similarity to the closest picked or labelled prompt
    nearest[order] = np.inf
    return _farthest_first(vectors, nearest, order)


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
