"""Value objects of the request log: one `LogRecord` per request, a `Label`, and `LogStats`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Rpc = Literal["Route", "Complete", "CompleteStream"]
RPCS: tuple[str, ...] = ("Route", "Complete", "CompleteStream")

# Fields written once by the request's own log entry; the rest (label fields) change later via set_label.
LABEL_FIELDS: tuple[str, ...] = (
    "small_ok",
    "label_source",
    "feedback_rating",
    "feedback_score",
    "feedback_comment",
    "judge_model",
    "judge_cost_usd",
    "judge_reason",
    "labelled_at",
)


def prompt_digest(text: str) -> str:
    """The hex sha256 of the UTF-8 prompt text: what is kept when prompts are not stored."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Label:
    """A verdict on whether the small tier's answer was good enough for this request.

    `small_ok` is 1 (good enough), 0 (not) or None (no verdict, e.g. feedback on a large-tier answer).
    `source` says who gave it: "feedback", "judge", ... A later label replaces an earlier one.
    """

    small_ok: int | None
    source: str
    rating: str | None = None  # feedback rating: "GOOD" or "BAD"
    score: float | None = None  # feedback score as the client sent it
    comment: str | None = None
    judge_model: str | None = None
    judge_cost_usd: float | None = None
    judge_reason: str | None = None

    def __post_init__(self) -> None:
        if self.small_ok not in (None, 0, 1):
            raise ValueError(f"small_ok must be 0, 1 or None, not {self.small_ok!r}")
        if not self.source:
            raise ValueError("a label needs a source")


@dataclass(frozen=True)
class LogRecord:
    """One served request, as the request log keeps it.

    Times are UTC; latencies in ms; cost in USD. `prompt` is None when `log.store_prompts` is false
    (`prompt_sha256` is always kept), `response` is kept only with `log.store_responses`.
    `score` is the classifier's probability in [0, 1] that the large tier is needed.
    The label fields are filled by the store when a label exists; a new record carries none.
    """

    request_id: str
    ts: datetime
    rpc: Rpc
    prompt_sha256: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    prompt: str | None = None
    score: float | None = None
    threshold: float | None = None
    rule: str | None = None
    tier: str | None = None
    model: str | None = None
    classifier_version: str | None = None
    fallback: bool = False
    fallback_reason: str | None = None
    classify_ms: float | None = None
    total_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    response: str | None = None
    exemplar_ids: Sequence[str] = ()
    replica_id: str | None = None  # the server that answered (`server.replica_id`); None in older logs
    # The request's shape (issue 16): response_format type ("text", "json_object", "json_schema"), the
    # schema's name, whether the answer passed its check (None: nothing was checked or no answer), how
    # many tools the request offered, and the names of the tools the answer called.
    format_type: str | None = None
    schema_name: str | None = None
    schema_valid: bool | None = None
    tools_offered: int = 0
    tool_calls: Sequence[str] = ()
    # The answer-aware cascade (issue 17): "route" or "cascade" (None in older logs); for a small answer the
    # cascade verified: whether it escalated, why (or why unverified), the verifier's P(good) (-1: none
    # ran), the small answer and its model (`response` is then the answer returned: the large one after an
    # escalation), the verifiers' inputs as JSON, and the ms an escalation added after the small answer.
    mode: str | None = None
    escalated: bool | None = None
    escalation_reason: str | None = None
    verifier_score: float | None = None
    small_response: str | None = None
    small_model: str | None = None
    verifier_inputs: str | None = None
    escalation_ms: float | None = None
    small_ok: int | None = None
    label_source: str | None = None
    feedback_rating: str | None = None
    feedback_score: float | None = None
    feedback_comment: str | None = None
    judge_model: str | None = None
    judge_cost_usd: float | None = None
    judge_reason: str | None = None
    labelled_at: datetime | None = None

    @property
    def answered_tier(self) -> str | None:
        """The tier whose answer the client got: the decided tier, or large after a fallback or a cascade
        escalation (None when the request was never routed)."""
        if self.tier is None:
            return None
        return "large" if self.fallback or self.escalated else self.tier

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ValueError("a log record needs a request_id")
        if self.ts.tzinfo is None:
            raise ValueError("LogRecord.ts must be timezone-aware (UTC)")
        if self.rpc not in RPCS:
            raise ValueError(f"rpc must be one of {', '.join(RPCS)}, not {self.rpc!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise ValueError("LogRecord.metadata keys and values must be strings")
        # Normalise to UTC and immutable containers so equal records compare equal after a round trip.
        object.__setattr__(self, "ts", self.ts.astimezone(UTC))
        object.__setattr__(self, "metadata", dict(self.metadata))
        object.__setattr__(self, "exemplar_ids", tuple(self.exemplar_ids))
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.labelled_at is not None:
            object.__setattr__(self, "labelled_at", self.labelled_at.astimezone(UTC))

    def without_label(self) -> LogRecord:
        """This record with every label field cleared: what the writer stores."""
        cleared: dict[str, Any] = dict.fromkeys(LABEL_FIELDS)
        return dataclasses.replace(self, **cleared)


@dataclass(frozen=True)
class ShadowAnswer:
    """One tier's answer to a logged request, kept for the teacher: from shadow sampling or `rightsize label`.

    Latency in ms, cost in USD. `response` is None when the call failed (then `error` says why).
    """

    request_id: str
    tier: str
    model: str
    ts: datetime
    response: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    total_ms: float | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("ShadowAnswer.ts must be timezone-aware (UTC)")
        object.__setattr__(self, "ts", self.ts.astimezone(UTC))


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LogRecord))
_DATETIME_FIELDS = frozenset({"ts", "labelled_at"})


def record_to_json(record: LogRecord) -> dict[str, Any]:
    """A JSON-ready dict of the record (times as ISO 8601 UTC), the inverse of `record_from_json`."""
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = getattr(record, name)
        if isinstance(value, datetime):
            value = format_ts(value)
        elif name in ("exemplar_ids", "tool_calls"):
            value = list(value)
        elif name == "metadata":
            value = dict(value)
        out[name] = value
    return out


def record_from_json(payload: Mapping[str, Any]) -> LogRecord:
    """Rebuild a record from `record_to_json` output; unknown keys are an error, missing ones default."""
    unknown = set(payload) - set(FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown log record fields: {', '.join(sorted(unknown))}")
    values = dict(payload)
    for name in _DATETIME_FIELDS:
        if values.get(name) is not None:
            values[name] = parse_ts(values[name])
    return LogRecord(**values)


def format_ts(value: datetime) -> str:
    """Fixed-width ISO 8601 UTC with microseconds, so text order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without an offset is taken as UTC."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def dumps_record(record: LogRecord) -> str:
    """One compact JSON line (no trailing newline)."""
    return json.dumps(record_to_json(record), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class TierStats:
    """Totals for one tier (or "-" for requests that never got one, e.g. errors before routing)."""

    tier: str
    requests: int
    fallbacks: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    mean_total_ms: float | None


@dataclass(frozen=True)
class LogStats:
    """Summary of the log: counts, labels and cost, overall and per tier."""

    requests: int
    first_ts: datetime | None
    last_ts: datetime | None
    labelled: int
    small_ok: int
    tiers: tuple[TierStats, ...]

    @property
    def fallbacks(self) -> int:
        return sum(t.fallbacks for t in self.tiers)

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.tiers)

    @property
    def cost_usd(self) -> float:
        return sum(t.cost_usd for t in self.tiers)
