"""The scoring queue: off the event loop, a lone request goes at once, concurrent ones share a batch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from router.scoring_queue import ScoringQueue
from tests.router.support import KeyedScorer


class SlowScorer(KeyedScorer):
    """Blocks its (worker) thread for a while, as onnxruntime does."""

    def __init__(self, seconds: float):
        super().__init__({"a": 0.1, "b": 0.9})
        self.seconds = seconds
        self.threads: set[str] = set()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        return super().score(texts)


async def test_scores_come_back_to_their_own_callers() -> None:
    scorer = KeyedScorer({"a": 0.1, "b": 0.9}, default=0.5)
    queue = ScoringQueue(scorer)
    try:
        assert await asyncio.gather(queue.score("a"), queue.score("b"), queue.score("c")) == pytest.approx(
            [0.1, 0.9, 0.5]
        )
    finally:
        queue.close()


async def test_scoring_runs_off_the_event_loop_and_coalesces_concurrent_requests() -> None:
    scorer = SlowScorer(0.05)
    queue = ScoringQueue(scorer, max_batch=4)
    try:
        first = asyncio.ensure_future(queue.score("a"))
        ticks = 0
        while not first.done():  # the loop keeps running while the worker thread scores
            ticks += 1
            await asyncio.sleep(0.005)
        assert ticks >= 5
        results = await asyncio.gather(*(queue.score(text) for text in ["a", "b"] * 5))
    finally:
        queue.close()
    assert results == pytest.approx([0.1, 0.9] * 5)
    assert scorer.threads == {"rightsize-score_0"}
    # 1 lone call, then 10 arriving together: batches of at most 4 instead of 10 runs of 1
    assert [len(batch) for batch in scorer.batches] == [1, 4, 4, 2]


async def test_a_scoring_failure_reaches_every_waiting_caller() -> None:
    class Broken(KeyedScorer):
        def score(self, texts: Sequence[str]) -> np.ndarray:
            raise RuntimeError("onnx exploded")

    queue = ScoringQueue(Broken())
    try:
        outcomes = await asyncio.gather(queue.score("a"), queue.score("b"), return_exceptions=True)
        assert [str(outcome) for outcome in outcomes] == ["onnx exploded", "onnx exploded"]
        queue.scorer = KeyedScorer({"a": 0.3})
        assert await queue.score("a") == pytest.approx(0.3)  # the queue recovers
    finally:
        queue.close()


@pytest.mark.parametrize(
    ("choice", "served"),
    [
        ("trained", "model.int8.onnx"),
        ("fp32", "model.onnx"),
        ("int8", "model.int8.onnx"),
        ("int8_full", "model.int8_full.onnx"),
    ],
)
def test_the_served_embedder_is_the_trained_one_unless_configured(
    choice: str, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`scoring.embedder: trained` serves the file the shipped head was trained on (int8), and start-up
    logs that file with the CPU features it was chosen on; the default is `auto`, measured at start-up
    (tests/classifier/test_autotune.py)."""
    import logging

    from classifier.cpu import describe_cpu
    from router.config import RouterConfig
    from router.rpc.server import load_scorer
    from tests.router.support import MODEL_DIR

    tiers = {"small": {"model": "ollama_chat/llama3:8b"}, "large": {"model": "ollama_chat/llama3:70b"}}
    models = {"dir": str(MODEL_DIR.parent), "active": MODEL_DIR.name}
    config = RouterConfig.model_validate({"tiers": tiers, "models": models, "scoring": {"embedder": choice}})
    defaults = RouterConfig.model_validate({"tiers": tiers}).scoring
    assert (defaults.embedder, defaults.threads) == ("auto", None)
    with caplog.at_level(logging.INFO, logger="router.rpc.server"):
        scorer = load_scorer(config)
    assert scorer.embedder.variant == served  # type: ignore[attr-defined]
    assert f"embedder {served} (scoring.embedder: {choice}) on {describe_cpu()}" in caplog.messages
    assert scorer.manifest.embedder.file == "model.int8.onnx"  # type: ignore[attr-defined]
