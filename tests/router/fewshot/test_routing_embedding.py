"""The routing embedding is reused for few-shot: one embedding pass per batch, returned with the score."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from router.scoring_queue import ScoringQueue
from tests.router.support import KeyedScorer


class CountingEmbedder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[float(len(text)), 1.0] for text in texts], dtype=np.float32)


class EmbeddingScorer:
    """A fake with the Scorer's split: embedder.embed, then score_embedded on those vectors."""

    version = "fake-emb"

    def __init__(self) -> None:
        self.embedder = CountingEmbedder()
        self.scored: list[np.ndarray] = []

    def score(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("score() would embed a second time")

    def score_embedded(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        self.scored.append(embeddings)
        return embeddings[:, 0] / 100


async def test_the_score_comes_with_the_embedding_it_was_computed_from() -> None:
    scorer = EmbeddingScorer()
    queue = ScoringQueue(scorer)
    try:
        results = await asyncio.gather(*(queue.score_with_embedding(text) for text in ("a", "bb", "ccc")))
    finally:
        queue.close()
    assert [score for score, _, _ in results] == pytest.approx([0.01, 0.02, 0.03])
    assert {version for _, version, _ in results} == {"fake-emb"}
    assert [list(embedding) for _, _, embedding in results] == [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]  # type: ignore[arg-type]
    assert sum(len(call) for call in scorer.embedder.calls) == 3  # each text embedded exactly once


async def test_a_scorer_without_an_embedder_scores_as_before_with_no_embedding() -> None:
    queue = ScoringQueue(KeyedScorer({"x": 0.7}))
    try:
        assert await queue.score_with_embedding("x") == (np.float32(0.7).item(), "fake-1", None)
    finally:
        queue.close()
