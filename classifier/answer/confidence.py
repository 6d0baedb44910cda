"""Confidence features from a small-tier answer's token log-probabilities (OpenAI `logprobs` format)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A token whose top-1 probability is below one half counts as low-confidence.
LOW_CONFIDENCE_LOGPROB = math.log(0.5)
# Backends report impossible tokens as -inf or -9999; margins past this are all "certain".
LOGPROB_FLOOR = -20.0
MARGIN_CAP = 20.0
# The answer's opening: its first tokens carry the decision ("Positive" vs "The review is ...").
FIRST_TOKENS = 8
_CONTENT = re.compile(r"[^\W_]", re.UNICODE)  # a letter or digit: not JSON punctuation, quotes or spaces


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's natural-log probability and the best other token's (None when not returned).

    `token` is its text when the backend gave it (None: unknown, counted as content)."""

    logprob: float
    second: float | None = None
    token: str | None = field(default=None, compare=False)  # equality stays (logprob, second)

    @property
    def is_content(self) -> bool:
        """A token with a letter or digit in it: the answer's value, not its format."""
        return self.token is None or bool(_CONTENT.search(self.token))


@dataclass(frozen=True)
class ConfidenceFeatures:
    """Per-answer summaries, in nats: mean and min token logprob (<= 0), mean top-1/top-2 margin (>= 0),
    share in [0, 1] of tokens with top-1 probability below 0.5, and the token count."""

    mean_logprob: float
    min_logprob: float
    mean_margin: float
    low_confidence_share: float
    tokens: int

    @property
    def score(self) -> float:
        """The confidence verifier's score in [0, 1]: the geometric-mean token probability."""
        return math.exp(self.mean_logprob)


def _get(entry: Any, key: str) -> Any:
    return entry.get(key) if isinstance(entry, Mapping) else getattr(entry, key, None)


def parse_openai_logprobs(content: Iterable[Any] | None) -> tuple[TokenLogprob, ...] | None:
    """`choices[0].logprobs.content` (dicts or LiteLLM/OpenAI objects) -> tokens; None when absent or empty.

    The second-best token is the best `top_logprobs` entry other than the generated token itself, so
    request `top_logprobs >= 2`.
    """
    if content is None:
        return None
    tokens = []
    for entry in content:
        logprob = _get(entry, "logprob")
        if logprob is None:
            return None
        token = _get(entry, "token")
        others = [
            _get(alt, "logprob") for alt in (_get(entry, "top_logprobs") or []) if _get(alt, "token") != token
        ]
        others = [float(value) for value in others if value is not None]
        text = token if isinstance(token, str) else None
        tokens.append(TokenLogprob(float(logprob), max(others) if others else None, text))
    return tuple(tokens) or None


@dataclass(frozen=True)
class FocusedConfidence:
    """Confidence on the parts of an answer that decide it, in nats: the content tokens' (letters or
    digits: JSON punctuation, quotes and whitespace skipped) mean and min logprob and mean and min
    top-1/top-2 margin, and the first FIRST_TOKENS tokens' mean logprob and min margin."""

    content_mean_logprob: float
    content_min_logprob: float
    content_mean_margin: float
    content_min_margin: float
    first_mean_logprob: float
    first_min_margin: float


def _clamped(tokens: Sequence[TokenLogprob]) -> tuple[list[float], list[float]]:
    logprobs = [max(LOGPROB_FLOOR, min(0.0, t.logprob)) for t in tokens]
    margins = [
        MARGIN_CAP if t.second is None else min(MARGIN_CAP, max(0.0, lp - max(LOGPROB_FLOOR, t.second)))
        for t, lp in zip(tokens, logprobs, strict=True)
    ]
    return logprobs, margins


def focused_confidence(tokens: Sequence[TokenLogprob] | None) -> FocusedConfidence | None:
    """The content-token and first-token summaries of `tokens` (None without log-probabilities). An
    answer with no content token is summarised over all its tokens."""
    if not tokens:
        return None
    content = [t for t in tokens if t.is_content] or list(tokens)
    logprobs, margins = _clamped(content)
    first_logprobs, first_margins = _clamped(tokens[:FIRST_TOKENS])
    return FocusedConfidence(
        content_mean_logprob=sum(logprobs) / len(logprobs),
        content_min_logprob=min(logprobs),
        content_mean_margin=sum(margins) / len(margins),
        content_min_margin=min(margins),
        first_mean_logprob=sum(first_logprobs) / len(first_logprobs),
        first_min_margin=min(first_margins),
    )


def confidence_features(tokens: Sequence[TokenLogprob] | None) -> ConfidenceFeatures | None:
    """The summaries of `tokens`; None when the backend returned no log-probabilities.

    A token without a second-best alternative counts with the capped margin (MARGIN_CAP nats).
    """
    if not tokens:
        return None
    logprobs, margins = _clamped(tokens)
    return ConfidenceFeatures(
        mean_logprob=sum(logprobs) / len(logprobs),
        min_logprob=min(logprobs),
        mean_margin=sum(margins) / len(margins),
        low_confidence_share=sum(lp < LOW_CONFIDENCE_LOGPROB for lp in logprobs) / len(logprobs),
        tokens=len(logprobs),
    )
