"""What the answer-quality head reads: one answer's signals, and the head's input vector (names in order)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.answer.confidence import ConfidenceFeatures, TokenLogprob, confidence_features
from classifier.answer.form import is_refusal, repetition_score, word_count

# The scalar inputs after the two embeddings, in this order. Missing log-probabilities are zeros with
# `logprobs_missing` = 1 (the head is trained with some rows masked so, so the indicator carries the offset).
ANSWER_FEATURE_NAMES: tuple[str, ...] = (
    "mean_logprob",
    "min_logprob",
    "mean_margin",
    "low_confidence_share",
    "logprobs_missing",
    "empty",
    "truncated",
    "refusal",
    "repetition",
    "schema_failed",
    "schema_passed",
    "log_answer_chars",
    "log_answer_words",
    "prompt_answer_cosine",
)
ANSWER_FEATURES_VERSION = 1


@dataclass(frozen=True)
class AnswerInput:
    """One small-tier answer to judge: its prompt (the scored text), text and what the backend reported.

    `logprobs` None: the backend returned none. `schema_valid` None: no schema was asked for.
    """

    prompt: str
    answer: str
    finish_reason: str | None = None
    completion_tokens: int | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    schema_valid: bool | None = None

    def confidence(self) -> ConfidenceFeatures | None:
        return confidence_features(self.logprobs)


def scalar_features(
    item: AnswerInput, cosine: float, confidence: ConfidenceFeatures | None = None, mask: bool = False
) -> list[float]:
    """The ANSWER_FEATURE_NAMES values of one answer; `mask` drops its log-probabilities (training aid)."""
    conf = None if mask else (confidence if confidence is not None else item.confidence())
    confidence_values = (
        [0.0, 0.0, 0.0, 0.0, 1.0]
        if conf is None
        else [conf.mean_logprob, conf.min_logprob, conf.mean_margin, conf.low_confidence_share, 0.0]
    )
    answer = item.answer
    return [
        *confidence_values,
        float(not answer.strip()),
        float(item.finish_reason == "length"),
        float(is_refusal(answer)),
        repetition_score(answer),
        float(item.schema_valid is False),
        float(item.schema_valid is True),
        math.log1p(len(answer)),
        math.log1p(word_count(answer)),
        cosine,
    ]


def head_inputs(
    prompt_embeddings: np.ndarray,
    answer_embeddings: np.ndarray,
    items: Sequence[AnswerInput],
    masked: Sequence[bool] | None = None,
) -> np.ndarray:
    """float32 [n, 2 * dim + len(ANSWER_FEATURE_NAMES)]: prompt embedding, answer embedding, scalars."""
    cosines = np.sum(prompt_embeddings * answer_embeddings, axis=1)
    masked = masked if masked is not None else [False] * len(items)
    scalars = np.array(
        [scalar_features(item, float(c), mask=m) for item, c, m in zip(items, cosines, masked, strict=True)],
        dtype=np.float32,
    ).reshape(len(items), len(ANSWER_FEATURE_NAMES))
    return np.hstack([prompt_embeddings, answer_embeddings, scalars]).astype(np.float32)
