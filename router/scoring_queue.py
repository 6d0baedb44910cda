"""Scoring off the event loop: one worker thread, and requests that arrive while it is busy coalesce.

A lone request is submitted at once (it never waits out a batching window); requests arriving while a
batch runs are scored together in the next onnxruntime run, up to `max_batch` texts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

import numpy as np

from router.memory import release_free_memory

# After an onnxruntime run, malloc keeps the freed activations (tens of MB for a batch of long prompts)
# resident. The worker hands them back at most this often: trimming after every batch cost about 0.5 ms.
TRIM_INTERVAL_S = 2.0


class TextScorer(Protocol):
    """The classifier seam: texts -> float scores in [0, 1] (classifier.scoring.Scorer satisfies it)."""

    @property
    def version(self) -> str: ...

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


class TextEmbedder(Protocol):
    """Texts -> unit float32 vectors [n, dim]."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class EmbeddingScorer(Protocol):
    """A scorer whose embedding step is exposed, so the routing embedding can be reused (few-shot)."""

    @property
    def version(self) -> str: ...

    @property
    def embedder(self) -> TextEmbedder: ...

    def score_embedded(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray: ...


# (score in [0, 1], classifier version, the text's unit embedding or None when the scorer exposes none)
Scored = tuple[float, str, np.ndarray | None]
BatchObserver = Callable[[int, float], None]  # (batch size, seconds) after each onnxruntime run


class ScoringQueue:
    """Scores texts in a dedicated single-thread executor, so gRPC handling never waits behind a batch.

    One worker: the ONNX sessions already use the machine's cores (intra-op threads); a second
    concurrent run would only contend with the first. Must be used from one event loop. `scorer` serves
    the calls that name none; the server names the one in its live routing state on every call.
    """

    def __init__(self, scorer: TextScorer, *, max_batch: int = 32, observe: BatchObserver | None = None):
        self.scorer = scorer
        self.max_batch = max_batch
        self._observe = observe
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rightsize-score")
        self._pending: list[tuple[str, TextScorer, asyncio.Future[Scored]]] = []
        self._drain_task: asyncio.Task[None] | None = None
        self._last_trim = time.monotonic()

    def swap(self, scorer: TextScorer) -> None:
        """Serve `scorer` to the calls queued from now on (those already queued keep theirs)."""
        self.scorer = scorer

    async def score(self, text: str) -> float:
        """The classifier score of one text, in [0, 1]."""
        return (await self.score_versioned(text))[0]

    async def score_versioned(self, text: str) -> tuple[float, str]:
        """(score in [0, 1], version of the classifier that computed it): exact across a `swap()`."""
        score, version, _ = await self.score_with_embedding(text)
        return score, version

    async def score_with_embedding(self, text: str, scorer: TextScorer | None = None) -> Scored:
        """As score_versioned(), plus the embedding the score was computed from (no second pass).

        `scorer`: the classifier to use (default: this queue's); texts for one scorer batch together.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scored] = loop.create_future()
        self._pending.append((text, scorer if scorer is not None else self.scorer, future))
        if self._drain_task is None:
            self._drain_task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                scorer = self._pending[0][1]
                batch = [(text, future) for text, owner, future in self._pending if owner is scorer]
                batch = batch[: self.max_batch]
                taken = {id(future) for _, future in batch}
                self._pending = [entry for entry in self._pending if id(entry[2]) not in taken]
                batch = [(text, future) for text, future in batch if not future.cancelled()]
                if not batch:
                    continue
                try:
                    texts = [text for text, _ in batch]
                    scores, version, embeddings = await loop.run_in_executor(
                        self._executor, self._run, scorer, texts
                    )
                except Exception as exc:  # handed to every waiting caller; their RPC boundary reports it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for row, ((_, future), score) in enumerate(zip(batch, scores, strict=True)):
                    if not future.done():
                        embedding = None if embeddings is None else embeddings[row]
                        future.set_result((float(score), version, embedding))
        finally:
            self._drain_task = None

    def _run(self, scorer: TextScorer, texts: list[str]) -> tuple[np.ndarray, str, np.ndarray | None]:
        started = time.perf_counter()
        embeddings = None
        if isinstance(scorer, EmbeddingScorer):
            # The same work as scorer.score(), split so the embedding is kept for few-shot selection.
            embeddings = scorer.embedder.embed(texts)
            scores = scorer.score_embedded(embeddings, texts)
        else:
            scores = scorer.score(texts)
        if self._observe is not None:
            self._observe(len(texts), time.perf_counter() - started)
        if time.monotonic() - self._last_trim >= TRIM_INTERVAL_S:
            release_free_memory()
            self._last_trim = time.monotonic()
        return scores, scorer.version, embeddings

    def close(self) -> None:
        """Stop the worker thread once the running batch (if any) finishes."""
        self._executor.shutdown(wait=False, cancel_futures=True)
