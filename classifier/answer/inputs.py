"""What the answer-quality head reads: one answer's signals, and the head's input vector (names in order)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.answer.confidence import (
    ConfidenceFeatures,
    TokenLogprob,
    confidence_features,
    focused_confidence,
)
from classifier.answer.consistency import answer_agreement
from classifier.answer.form import is_refusal, repetition_score, word_count

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# The scalar inputs after the two embeddings, in this order. Missing log-probabilities are zeros with
# `logprobs_missing` = 1 (the head is trained with some rows masked so, so the indicator carries the offset).
# v2 and v3 append features to v1's; a head's manifest lists the ones it reads (a v1 head's 14 still load).
ANSWER_FEATURES_V1: tuple[str, ...] = (
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
COSINE_FEATURE = "prompt_answer_cosine"  # the one scalar that needs the answer's embedding
ANSWER_FEATURE_NAMES: tuple[str, ...] = ANSWER_FEATURES_V1 + (
    # confidence where it decides: content tokens (letters/digits) and the answer's first tokens
    "content_mean_logprob",
    "content_min_logprob",
    "content_mean_margin",
    "content_min_margin",
    "first_mean_logprob",
    "first_min_margin",
    # prompt-answer: the answer's share of words found in the prompt, its lines
    "answer_in_prompt_share",
    "log_answer_lines",
    # self-consistency with a second sampled answer (opt-in: zeros with sample_missing = 1 without one)
    "sample_same_core",
    "sample_word_overlap",
    "sample_missing",
    # v3: how many worked examples (router.fewshot exemplars) were in front of the small model
    "log_exemplars",
)
ANSWER_FEATURES_VERSION = 3
LOGPROB_FEATURES = frozenset(
    ("mean_logprob", "min_logprob", "mean_margin", "low_confidence_share")
    + ANSWER_FEATURE_NAMES[len(ANSWER_FEATURES_V1) : len(ANSWER_FEATURES_V1) + 6]
)
SAMPLE_FEATURES = frozenset(("sample_same_core", "sample_word_overlap", "sample_missing"))


@dataclass(frozen=True)
class AnswerInput:
    """One small-tier answer to judge: its prompt (the scored text), text and what the backend reported.

    `logprobs` None: the backend returned none. `schema_valid` None: no schema was asked for.
    `sample` is a second, sampled answer to the same prompt (the opt-in self-consistency signal).
    `exemplars`: how many few-shot exemplars were injected before the prompt (0: zero-shot). With them in
    front, a small model answers in the exemplars' format, confidently, right or not (benchmarks/
    cascade_stream.py), so a head must know.
    """

    prompt: str
    answer: str
    finish_reason: str | None = None
    completion_tokens: int | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    schema_valid: bool | None = None
    sample: str | None = None
    exemplars: int = 0

    def confidence(self) -> ConfidenceFeatures | None:
        return confidence_features(self.logprobs)


def scalar_features(
    item: AnswerInput,
    cosine: float,
    confidence: ConfidenceFeatures | None = None,
    mask: bool = False,
    mask_sample: bool = False,
) -> list[float]:
    """The ANSWER_FEATURE_NAMES values of one answer; `mask` drops its log-probabilities and
    `mask_sample` its second sample (training aids)."""
    conf = None if mask else (confidence if confidence is not None else item.confidence())
    confidence_values = (
        [0.0, 0.0, 0.0, 0.0, 1.0]
        if conf is None
        else [conf.mean_logprob, conf.min_logprob, conf.mean_margin, conf.low_confidence_share, 0.0]
    )
    focused = None if conf is None else focused_confidence(item.logprobs)
    focused_values = (
        [0.0] * 6
        if focused is None
        else [
            focused.content_mean_logprob,
            focused.content_min_logprob,
            focused.content_mean_margin,
            focused.content_min_margin,
            focused.first_mean_logprob,
            focused.first_min_margin,
        ]
    )
    answer = item.answer
    words = _WORD.findall(answer.lower())
    prompt_words = set(_WORD.findall(item.prompt.lower()))
    in_prompt = sum(word in prompt_words for word in words) / len(words) if words else 0.0
    lines = sum(1 for line in answer.splitlines() if line.strip())
    sample = None if mask_sample else item.sample
    sample_values = [0.0, 0.0, 1.0] if sample is None else [*answer_agreement(answer, sample), 0.0]
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
        *focused_values,
        in_prompt,
        math.log1p(lines),
        *sample_values,
        math.log1p(item.exemplars),
    ]


def head_inputs(
    prompt_embeddings: np.ndarray,
    answer_embeddings: np.ndarray,
    items: Sequence[AnswerInput],
    masked: Sequence[bool] | None = None,
    masked_samples: Sequence[bool] | None = None,
) -> np.ndarray:
    """float32 [n, 2 * dim + len(ANSWER_FEATURE_NAMES)]: prompt embedding, answer embedding, scalars."""
    cosines = np.sum(prompt_embeddings * answer_embeddings, axis=1)
    masked = masked if masked is not None else [False] * len(items)
    masked_samples = masked_samples if masked_samples is not None else [False] * len(items)
    scalars = np.array(
        [
            scalar_features(item, float(c), mask=m, mask_sample=ms)
            for item, c, m, ms in zip(items, cosines, masked, masked_samples, strict=True)
        ],
        dtype=np.float32,
    ).reshape(len(items), len(ANSWER_FEATURE_NAMES))
    return np.hstack([prompt_embeddings, answer_embeddings, scalars]).astype(np.float32)
