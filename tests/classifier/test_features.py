"""Structural features: the fast forms count exactly what the plain definitions count."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from classifier import features
from classifier.features import FEATURE_NAMES, structural_features
from tests.classifier.test_embedding import parity_corpus

ROOT = Path(__file__).resolve().parents[2]


def corpus() -> list[str]:
    texts = [*parity_corpus(), "²³¼ ٣ ½", "é\u0301 Ｋelvin K ſtep-by-step İstanbul", "WHY? Why... whyever"]
    shared = ROOT.parent / "shared" / "data" / "routing" / "train.jsonl"
    if shared.is_file():
        with shared.open() as handle:
            texts += [json.loads(line)["prompt"] for _, line in zip(range(3000), handle, strict=False)]
    return texts


def test_keyword_patterns_match_their_plain_form() -> None:
    """The first-letter lookahead only skips positions: the matches are those of `\\b(...)` alone."""
    for name in ("_TASK", "_REASONING", "_TECHNICAL", "_SIMPLE"):
        fast: re.Pattern[str] = getattr(features, name)
        plain = re.compile(fast.pattern.split(")", 1)[1], re.I)  # drop the leading (?=[...])
        assert plain.pattern.startswith(r"\b(")
        for text in corpus():
            assert fast.findall(text) == plain.findall(text), (name, text[:80])


def test_character_shares_follow_their_definitions() -> None:
    texts = corpus()
    got = structural_features(texts)
    digits = FEATURE_NAMES.index("digit_share")
    non_ascii = FEATURE_NAMES.index("non_ascii_share")
    for row, text in enumerate(texts):
        per_char = 1.0 / max(len(text), 1)
        assert got[row, digits] == np.float32(sum(c.isdigit() for c in text) * per_char)
        assert got[row, non_ascii] == np.float32(sum(ord(c) > 127 for c in text) * per_char)
