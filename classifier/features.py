"""Cheap structural features of a prompt (length, code, maths, structure), computed beside the embedding."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

FEATURES_VERSION = 2
FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "log_lines",
    "code_density",
    "math_density",
    "digit_share",
    "questions",
    "list_items",
    "choice_options",
    "non_ascii_share",
    "task_verbs",
    "reasoning_markers",
    "technical_terms",
    "simple_markers",
)

_CODE = re.compile(
    r"```|[{};]\s*$|^\s*(def|class|import|from|#include|public|function|return|for|while|if)\b", re.M
)
_MATH = re.compile(
    r"\$|\\[a-z]+|[=^<>≤≥∑∫√π]|\b(sqrt|log|sin|cos|mod|integral|derivative|prove|equation)\b", re.I
)
_LIST = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.M)
_CHOICE = re.compile(r"^\s*\(?[A-Ea-e][.)]\s+\S", re.M)


def _any_word(alternatives: str, *, word_end: bool = False) -> re.Pattern[str]:
    """`\\b(alternatives)` (then `\\b` with `word_end`), case-insensitive.

    A lookahead on the alternatives' possible first letters lets the scan skip most positions before it
    tries them all: about twice as fast on a 10,000-character prompt, same matches (a test compares).
    """
    firsts = "".join(sorted({alternative[0].lower() for alternative in alternatives.split("|")}))
    return re.compile(rf"(?=[{firsts}])\b({alternatives})" + (r"\b" if word_end else ""), re.I)


_TASK = _any_word(
    r"design|implement|architect|optimi[sz]e|analy[sz]e|prove|derive|explain why|compare|trade-?offs?|"
    r"step[- ]by[- ]step|debug|refactor|algorithm|complexity|strategy|evaluate|critique|plan",
    word_end=True,
)

_REASONING = _any_word(
    r"step[- ]by[- ]step|show your work|justify|reasoning|why\b|deduce|infer|conclude|logical(ly)?|"
    r"pros and cons|weigh|think (through|carefully)|break (it )?down|walk me through|in detail",
)
_TECHNICAL = _any_word(
    r"architecture|distributed|scalab\w*|concurren\w*|latency|throughput|protocol|encrypt\w*|theorem|"
    r"integral|derivative|probabilit\w*|matri(x|ces)|eigen\w*|quantum|molecul\w*|enzyme|neural|compiler|"
    r"kernel|database|asymptotic|recursion|polynomial|statistic\w*|hypothes[ie]s|thermodynamic\w*",
)
_SIMPLE = _any_word(
    r"what is|what's|who is|who was|define|when (did|was)|where is|how many|translate|summari[sz]e|"
    r"rewrite|rephrase|fix the (spelling|grammar)|classify|extract|hello|hi|thanks|thank you|yes or no|"
    r"true or false|one word|briefly",
    word_end=True,
)


def structural_features(texts: Sequence[str]) -> np.ndarray:
    """float32 [len(texts), len(FEATURE_NAMES)]; each value is a small, unscaled number (logs or shares)."""
    out = np.zeros((len(texts), len(FEATURE_NAMES)), dtype=np.float32)
    for row, text in enumerate(texts):
        out[row] = _features(text)
    return out


def _features(text: str) -> list[float]:
    chars = len(text)
    lines = text.count("\n") + 1
    words = len(text.split())
    per_line = 1.0 / lines
    per_char = 1.0 / max(chars, 1)
    return [
        math.log1p(chars),
        math.log1p(words),
        math.log1p(lines),
        len(_CODE.findall(text)) * per_line,
        min(len(_MATH.findall(text)) * 20.0 * per_char, 1.0),
        sum(map(str.isdigit, text)) * per_char,
        math.log1p(text.count("?")),
        math.log1p(len(_LIST.findall(text))),
        math.log1p(len(_CHOICE.findall(text))),
        (chars - len(text.encode("ascii", "ignore"))) * per_char,  # characters past U+007F
        math.log1p(len(_TASK.findall(text))),
        math.log1p(len(_REASONING.findall(text))),
        math.log1p(len(_TECHNICAL.findall(text))),
        math.log1p(len(_SIMPLE.findall(text))),
    ]
