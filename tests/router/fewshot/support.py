"""Helpers for the few-shot tests: log records of approved large-tier answers, and a SQLite log with them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from router.requestlog import Label, LogRecord, RequestLogStore, ShadowAnswer, open_store, prompt_digest

# Relative to now: the few-shot log window (`log_window_days`, 30 by default) is counted back from now,
# so a fixed date would fall out of it one day.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def record(i: int, text: str, response: str | None, **overrides: Any) -> LogRecord:
    """A large-tier Complete record of prompt `text` (the defaults) with the response kept."""
    values: dict[str, Any] = dict(
        request_id=f"req-{i}", ts=T0 + timedelta(seconds=i), rpc="Complete",
        prompt_sha256=prompt_digest(text), metadata={"tenant": "acme"}, prompt=text, score=0.8, threshold=0.5,
        rule="global", tier="large", model="openai/gpt-4o", classifier_version="v1", response=response,
        prompt_tokens=10, completion_tokens=5,
    )  # fmt: skip
    values.update(overrides)
    return LogRecord(**values)


def good(score: float | None = None) -> Label:
    return Label(small_ok=None, source="feedback", rating="GOOD", score=score)


def bad() -> Label:
    return Label(small_ok=None, source="feedback", rating="BAD")


def judged(small_ok: int = 0) -> Label:
    return Label(small_ok=small_ok, source="judge", judge_model="openai/gpt-4o", judge_reason="ok")


def seeded_log(
    path: Path, rows: Sequence[tuple[LogRecord, Label | None]], answers: Sequence[ShadowAnswer] = ()
) -> RequestLogStore:
    """A SQLite request log at `path` holding `rows` with their labels (and stored tier answers)."""
    store = open_store(f"sqlite:///{path}")
    store.write_batch([row for row, _ in rows])
    for row, label in rows:
        if label is not None:
            assert store.set_label(row.request_id, label)
    for answer in answers:
        assert store.add_answer(answer)
    return store


def shadow_large(request_id: str, text: str) -> ShadowAnswer:
    return ShadowAnswer(request_id, "large", "openai/gpt-4o", T0, response=text)
