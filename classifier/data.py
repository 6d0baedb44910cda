"""Reading JSONL prompt files: labelled examples for training/eval and prompts for scoring."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
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
    scale: str | None = None  # "correct01" (right/wrong) or "judge1-10"; None when unknown

    @property
    def small_failed(self) -> int:
        """1 when the small model got a right/wrong task wrong; else (graded or unknown) 1 - small_ok."""
        if self.scale == "correct01" and self.small_score is not None:
            return 0 if self.small_score >= 1.0 else 1
        return 1 - self.small_ok


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


def read_examples(paths: list[Path], options: TextOptions = TextOptions()) -> list[Example]:
    """Labelled examples from one or more files; rows with NaN outcome scores are skipped."""
    examples: list[Example] = []
    for path in paths:
        for number, obj in iter_json_lines(path):
            example = _example(obj, f"{path}:{number}", options)
            if example is not None:
                examples.append(example)
        if not examples:
            raise DataError(f"{path}: empty file (no labelled rows)")
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
        scale=obj.get("scale") if isinstance(obj.get("scale"), str) else None,
    )


def _optional_number(obj: dict[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: `{key}` must be a number")
    return float(value)
