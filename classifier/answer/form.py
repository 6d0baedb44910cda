"""Form checks on a small-tier answer: empty, cut off too early, a refusal, degenerate repetition, schema."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Refusals as small instruction-tuned models phrase them; matched at the start of the answer only, so an
# answer that quotes such a phrase later is not a refusal.
_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry, (but )?i|i (cannot|can't|can not|won't|am unable|am not able|"
    r"do not have|don't have)|as an ai\b|i'?m (unable|not able)|unfortunately,? i (cannot|can't)|"
    r"i apologi[sz]e)",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class FormConfig:
    """Which form checks run, and their limits. Every check can be switched off on its own.

    `truncated_min_tokens`: an answer stopped by `max_tokens` (finish_reason `length`) fails when it has
    fewer completion tokens than this; a longer cut-off answer may still be useful. `repetition_max`: the
    share of repeated word 4-grams (0 = none, 1 = one phrase over and over) above which an answer of at
    least `repetition_min_words` words is degenerate.
    """

    empty: bool = True
    truncation: bool = True
    truncated_min_tokens: int = 256
    refusal: bool = True
    repetition: bool = True
    repetition_max: float = 0.5
    repetition_min_words: int = 12
    schema: bool = True


@dataclass(frozen=True)
class FormVerdict:
    """`ok` False names the first failed check in `reason` (e.g. `form:empty`), with its `value`."""

    ok: bool
    reason: str = ""
    value: float | None = None


def is_refusal(answer: str) -> bool:
    """True when the answer opens with a refusal ("I'm sorry, but I can't...", "As an AI...")."""
    return bool(_REFUSAL.match(answer))


def repetition_score(answer: str) -> float:
    """Share in [0, 1] of word 4-grams that repeat an earlier one (0 for fewer than 5 words)."""
    words = [w.lower() for w in _WORD.findall(answer)]
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    if len(grams) < 2:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def word_count(answer: str) -> int:
    return len(_WORD.findall(answer))


def form_verdict(
    answer: str,
    *,
    finish_reason: str | None = None,
    completion_tokens: int | None = None,
    schema_valid: bool | None = None,
    config: FormConfig = FormConfig(),
) -> FormVerdict:
    """Run the enabled checks, cheapest first; the first that fails decides.

    `schema_valid` is the caller's JSON Schema verdict (None when no schema was asked for).
    `completion_tokens` None is estimated as one token per word.
    """
    if config.empty and not answer.strip():
        return FormVerdict(False, "form:empty", 0.0)
    if config.schema and schema_valid is False:
        return FormVerdict(False, "form:schema", 0.0)
    if config.truncation and finish_reason == "length":
        tokens = completion_tokens if completion_tokens is not None else word_count(answer)
        if tokens < config.truncated_min_tokens:
            return FormVerdict(False, "form:truncated", float(tokens))
    if config.refusal and is_refusal(answer):
        return FormVerdict(False, "form:refusal", 1.0)
    if config.repetition and word_count(answer) >= config.repetition_min_words:
        score = repetition_score(answer)
        if score > config.repetition_max:
            return FormVerdict(False, "form:repetition", round(score, 4))
    return FormVerdict(True)
