"""Export formats of the request log: JSON Lines (lossless) and CSV (one column per field), with readers."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from router.requestlog.records import (
    FIELD_NAMES,
    LogRecord,
    dumps_record,
    format_ts,
    parse_ts,
    record_from_json,
)

_INT_FIELDS = frozenset({"prompt_tokens", "completion_tokens", "small_ok", "tools_offered"})
_FLOAT_FIELDS = frozenset(
    {"score", "threshold", "classify_ms", "total_ms", "cost_usd", "feedback_score", "judge_cost_usd"}
)
_JSON_FIELDS = frozenset({"metadata", "exemplar_ids", "tool_calls"})
_REQUIRED_TEXT = frozenset({"request_id", "ts", "rpc", "prompt_sha256"})


def write_jsonl(records: Iterable[LogRecord], out: TextIO) -> int:
    """One JSON object per line, the fields of `LogRecord` (times ISO 8601 UTC); returns the count."""
    count = 0
    for record in records:
        out.write(dumps_record(record) + "\n")
        count += 1
    return count


def read_jsonl(source: TextIO) -> Iterator[LogRecord]:
    """Records from `write_jsonl` output; blank lines are skipped."""
    for number, line in enumerate(source, start=1):
        if line.strip():
            try:
                yield record_from_json(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"line {number}: not a log record: {exc}") from exc


def write_csv(records: Iterable[LogRecord], out: TextIO) -> int:
    """A header row of the `LogRecord` field names, then one row per record; returns the count.

    Empty cells are None (so an empty prompt reads back as None); metadata and exemplar_ids are JSON;
    fallback is true/false.
    """
    writer = csv.writer(out)
    writer.writerow(FIELD_NAMES)
    count = 0
    for record in records:
        writer.writerow([_cell(getattr(record, name)) for name in FIELD_NAMES])
        count += 1
    return count


def read_csv(source: TextIO) -> Iterator[LogRecord]:
    """Records from `write_csv` output."""
    reader = csv.DictReader(source)
    for number, row in enumerate(reader, start=2):
        try:
            yield LogRecord(**{name: _parse(name, text) for name, text in row.items()})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"row {number}: not a log record: {exc}") from exc


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "astimezone"):
        return format_ts(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, tuple):
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)


def _parse(name: str, text: str) -> Any:
    if name in _JSON_FIELDS:
        return json.loads(text)
    if name == "fallback":
        return text == "true"
    if name == "schema_valid":
        return None if text == "" else text == "true"
    if text == "" and name not in _REQUIRED_TEXT:
        return None
    if name in _INT_FIELDS:
        return int(text)
    if name in _FLOAT_FIELDS:
        return float(text)
    if name in ("ts", "labelled_at"):
        return parse_ts(text)
    return text
