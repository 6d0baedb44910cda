"""Active labelling: which unlabelled prompts to send to the judge first (near the threshold, or spread)."""

from __future__ import annotations

from typing import Literal

import numpy as np

Strategy = Literal["uncertainty", "diverse", "random"]
STRATEGIES: tuple[Strategy, ...] = ("diverse", "uncertainty", "random")


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
