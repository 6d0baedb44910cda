"""Self-consistency: does a second, sampled answer from the small model agree with the one being judged?"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _core(answer: str) -> tuple[str, ...]:
    """The answer's first non-empty line as lower-case words (its value, without framing punctuation)."""
    for line in answer.splitlines():
        words = tuple(_WORD.findall(line.lower()))
        if words:
            return words
    return ()


def answer_agreement(answer: str, sample: str) -> tuple[float, float]:
    """(same core, word overlap) of two answers to one prompt, each in [0, 1].

    `same core` is 1 when their first non-empty lines have the same words; `word overlap` is the Jaccard
    index of their lower-case word sets (1 when both are empty).
    """
    core = _core(answer)
    same = float(bool(core) and core == _core(sample))
    words, other = set(_WORD.findall(answer.lower())), set(_WORD.findall(sample.lower()))
    union = words | other
    return same, (len(words & other) / len(union)) if union else 1.0


def agreement_score(answer: str, sample: str) -> float:
    """One number for the self-consistency verifier: the mean of answer_agreement's two, in [0, 1]."""
    return sum(answer_agreement(answer, sample)) / 2
