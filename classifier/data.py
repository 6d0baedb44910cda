"""Reading JSONL prompt files: labelled examples for training/eval and prompts for scoring."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from classifier.errors import DataError
from classifier.text import ROLES, TextOptions, Turn, scoring_text


@dataclass(frozen=True)
class Prompt:
    """One input line for scoring: an id and the text to score."""

    id: Any
    text: str


@dataclass(frozen=True)
class Example:
    """One labelled outcome: the prompt text, whether the small model was good enough, and scores if known."""

    text: str
    small_ok: int
    source: str = "unknown"
    weight: float = 1.0
    small_score: float | None = None
    large_score: float | None = None
    scale: str | None = None  # a key of SCALES; None when unknown (no scores, or not inferred)

    @property
    def small_failed(self) -> int:
        """1 when the small model got a right/wrong task wrong; else (graded or unknown) 1 - small_ok."""
        if self.scale == "correct01" and self.small_score is not None:
            return 0 if self.small_score >= 1.0 else 1
        return 1 - self.small_ok

    @property
    def gain(self) -> float:
        """What sending the prompt large gains, mapped to [0, 1]: (1 + (large - small) / range) / 2, so 1 =
        only the large model succeeds, 0.5 = no difference, 0 = only the small one does. Without both scores
        and a known scale: 1 - small_ok."""
        normalised = self.normalised_scores()
        if normalised is None:
            return float(1 - self.small_ok)
        small, large = normalised
        return (1.0 + large - small) / 2.0

    def normalised_scores(self) -> tuple[float, float] | None:
        """(small, large) scores mapped to [0, 1] by the scale's range; None without both or a scale."""
        if self.small_score is None or self.large_score is None or self.scale not in SCALES:
            return None
        low, high = SCALES[self.scale]
        return (self.small_score - low) / (high - low), (self.large_score - low) / (high - low)


# Score scales and their (lowest, highest) values. `unit01` is a graded score in [0, 1] (a win rate, a
# share of tests passed); `correct01` is right (1) or wrong (0).
SCALES: dict[str, tuple[float, float]] = {
    "correct01": (0.0, 1.0),
    "unit01": (0.0, 1.0),
    "judge1-10": (1.0, 10.0),
}


def infer_scale(scores: list[float]) -> str | None:
    """The scale a set of outcome scores is on: only 0 and 1 -> correct01, within [0, 1] -> unit01, within
    [1, 10] -> judge1-10; None when they fit none of these."""
    if not scores:
        return None
    if all(s in (0.0, 1.0) for s in scores):
        return "correct01"
    if all(0.0 <= s <= 1.0 for s in scores):
        return "unit01"
    if all(1.0 <= s <= 10.0 for s in scores):
        return "judge1-10"
    return None


def with_scales(examples: list[Example], where: str) -> tuple[list[Example], list[str]]:
    """Fill in the scale of rows that have scores but no `scale`, inferred per source from all its scores
    (small and large): (examples, one note per inferred source). A source whose scores fit no known scale
    is a DataError: its label and quality could not be read correctly."""
    scores: dict[str, list[float]] = defaultdict(list)
    for example in examples:
        if example.scale is None and example.small_score is not None and example.large_score is not None:
            scores[example.source] += [example.small_score, example.large_score]
    inferred: dict[str, str] = {}
    notes = []
    for source, values in sorted(scores.items()):
        scale = infer_scale(values)
        if scale is None:
            raise DataError(
                f"{where}: source {source!r} has scores from {min(values):g} to {max(values):g} and no "
                f'`scale`; add "scale" ({", ".join(SCALES)}) to its rows'
            )
        inferred[source] = scale
        notes.append(f"source {source}: no `scale`, inferred {scale} from its scores")
    if not inferred:
        return examples, notes
    filled = [
        replace(e, scale=inferred[e.source])
        if e.scale is None and e.small_score is not None and e.large_score is not None
        else e
        for e in examples
    ]
    return filled, notes


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a malformed line is a DataError naming it."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a directory, not a JSONL file") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: malformed JSON ({exc.msg})") from exc
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 text") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def text_of(obj: dict[str, Any], where: str, options: TextOptions = TextOptions()) -> str:
    """The text to score from a line with `prompt` (a string) or `messages` (a chat)."""
    if "prompt" in obj:
        prompt = obj["prompt"]
        if not isinstance(prompt, str):
            raise DataError(f"{where}: `prompt` must be a string")
        return prompt
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: `messages` must be a non-empty list")
        turns = []
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                raise DataError(f"{where}: each message needs a string `content`")
            if message.get("role") not in ROLES:
                raise DataError(
                    f"{where}: unknown role {message.get('role')!r} (use {', '.join(sorted(ROLES))})"
                )
            turns.append(Turn(message["role"], message["content"]))
        text = scoring_text(turns, options)
        if not text:
            raise DataError(f"{where}: no user message")
        return text
    raise DataError(f"{where}: needs `prompt` or `messages`")


def read_prompts(path: Path, options: TextOptions = TextOptions()) -> list[Prompt]:
    """Prompts to score, in file order; an empty file is a DataError."""
    prompts = [
        Prompt(obj.get("id", number), text_of(obj, f"{path}:{number}", options))
        for number, obj in iter_json_lines(path)
    ]
    if not prompts:
        raise DataError(f"{path}: empty file (no prompts)")
    return prompts


def read_examples(
    paths: list[Path], options: TextOptions = TextOptions(), notes: list[str] | None = None
) -> list[Example]:
    """Labelled examples from one or more files; rows with NaN outcome scores are skipped.

    Rows with `small_score`/`large_score` but no `scale` get one inferred per file and source
    (`with_scales`); what was inferred is appended to `notes` when given."""
    examples: list[Example] = []
    for path in paths:
        rows = []
        for number, obj in iter_json_lines(path):
            example = _example(obj, f"{path}:{number}", options)
            if example is not None:
                rows.append(example)
        if not rows:
            raise DataError(f"{path}: empty file (no labelled rows)")
        rows, inferred = with_scales(rows, str(path))
        examples += rows
        if notes is not None:
            notes += [f"{path}: {note}" for note in inferred]
    classes = {example.small_ok for example in examples}
    if len(classes) < 2:
        only = "small_ok=1 (small always good enough)" if classes == {1} else "small_ok=0"
        raise DataError(f"need both classes to train or evaluate, but every row is {only}")
    return examples


def _example(obj: dict[str, Any], where: str, options: TextOptions) -> Example | None:
    small_score = _optional_number(obj, "small_score", where)
    large_score = _optional_number(obj, "large_score", where)
    if "small_ok" not in obj:
        raise DataError(f"{where}: missing `small_ok` (0 or 1)")
    if obj["small_ok"] is None:  # an unlabelled row (e.g. from the request log)
        return None
    label = obj["small_ok"]
    if label not in (0, 1) or isinstance(label, bool):
        raise DataError(f"{where}: `small_ok` must be 0 or 1, got {label!r}")
    if (small_score is not None and math.isnan(small_score)) or (
        large_score is not None and math.isnan(large_score)
    ):
        return None
    weight = _optional_number(obj, "weight", where)
    if weight is not None and not weight > 0:
        raise DataError(f"{where}: `weight` must be positive")
    return Example(
        text=text_of(obj, where, options),
        small_ok=int(label),
        source=str(obj.get("source", "unknown")),
        weight=1.0 if weight is None else weight,
        small_score=small_score,
        large_score=large_score,
        scale=_scale(obj, where),
    )


def _scale(obj: dict[str, Any], where: str) -> str | None:
    scale = obj.get("scale")
    if scale is None:
        return None
    if scale not in SCALES:
        raise DataError(f"{where}: unknown `scale` {scale!r} (use {', '.join(SCALES)})")
    return str(scale)


def _optional_number(obj: dict[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: `{key}` must be a number")
    return float(value)
