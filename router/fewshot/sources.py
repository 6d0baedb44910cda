"""Where exemplars come from: a curated JSONL file, and the request log's approved large-tier answers.

Approved, for the log (also what `rightsize export-finetune` exports):
- a request the large tier answered (decided large, or a small-tier failure answered by large) whose
  client rated the answer GOOD (Feedback); its answer is the logged response (`log.store_responses`);
- a request the judge labelled (`rightsize label`): the judge graded the small answer against the large
  tier's, which it took as the reference; the large answer is the logged response or the stored tier answer.
- a pair stored by `rightsize teach` (label source "teach"): the large tier's answer to a task input,
  validated against the task's schema before it was stored.
- with `routing.cascade.approve_escalations` (approval "escalation"): a large answer the cascade returned
  after the small answer failed verification: the very example the small model lacked. Without the switch
  such an answer counts under the rules above (rated GOOD, or judged).
Either way the prompt must be kept (`log.store_prompts`), the call must not have failed, the answer must be
non-empty, an answer that failed its schema check (schema_valid false) never counts, a BAD rating always
disqualifies, and a prompt or answer masked by `log.redact` (it holds one of
REDACTION_TAGS) is dropped: a model must not learn to write "[EMAIL]". Quality is the feedback score when
given, else 1.0.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.errors import ConfigError
from router.fewshot.exemplars import Exemplar
from router.fewshot.settings import TASK_KEY, TENANT_KEY
from router.requestlog import LogRecord, RequestLogStore

# What router.redact puts in place of masked personal data.
REDACTION_TAGS = ("[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[REDACTED]")


class CuratedLine(BaseModel):
    """One line of a curated exemplar file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    tenant: str | None = Field(default=None, min_length=1)
    quality: float = Field(default=1.0, ge=0, le=1)

    @field_validator("prompt", "answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


def read_curated(path: Path) -> list[Exemplar]:
    """Every exemplar in a curated JSONL file; raises ConfigError naming the line that is wrong."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"few-shot file {path}: {exc.strerror or exc}") from exc
    exemplars: list[Exemplar] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = CuratedLine.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            detail = exc.errors()[0] if isinstance(exc, ValidationError) else None
            where = f"{'.'.join(str(p) for p in detail['loc'])}: {detail['msg']}" if detail else str(exc)
            raise ConfigError(f"few-shot file {path}, line {number}: {where}") from exc
        exemplars.append(Exemplar(
            id=f"cur-{_digest(line.prompt, line.answer, line.tenant or '')}", prompt=line.prompt,
            answer=line.answer, source="curated", quality=line.quality, tenant=line.tenant,
        ))  # fmt: skip
    return exemplars


@dataclass(frozen=True)
class ApprovedPair:
    """An approved large-tier answer from the log: the training/exemplar pair and where it came from."""

    request_id: str
    ts: datetime
    prompt: str
    answer: str
    tenant: str | None
    quality: float
    approval: str  # "feedback" (rated GOOD), "judge", "teach" or "escalation"
    task: str | None = None  # the request's metadata task
    schema_name: str | None = None  # with a json_schema response format: the schema's name

    def exemplar(self) -> Exemplar:
        return Exemplar(
            id=f"log-{self.request_id}",
            prompt=self.prompt,
            answer=self.answer,
            source="logs",
            quality=self.quality,
            tenant=self.tenant,
            request_id=self.request_id,
            task=self.task,
            schema_name=self.schema_name,
        )


def approved_pairs(
    store: RequestLogStore,
    *,
    since: datetime | None = None,
    tenant: str | None = None,
    min_quality: float = 0.0,
    approve_escalations: bool = False,
) -> Iterator[ApprovedPair]:
    """The log's approved large-tier answers (see the module docstring), oldest first, not deduplicated.

    `tenant` keeps only that tenant's requests (None: every request). `approve_escalations`: a large
    answer returned after a cascade escalation is approved as it is (routing.cascade.approve_escalations).
    """
    for record in store.iter_records(since=since):
        if tenant is not None and record.metadata.get(TENANT_KEY) != tenant:
            continue
        approval = _approval(record, approve_escalations)
        if approval is None:
            continue
        quality = record.feedback_score if record.feedback_score is not None else 1.0
        if quality < min_quality:
            continue
        answer = _large_answer(store, record)
        assert record.prompt is not None  # _approval checked it
        if not answer or redacted(record.prompt) or redacted(answer):
            continue
        yield ApprovedPair(
            request_id=record.request_id, ts=record.ts, prompt=record.prompt.strip(), answer=answer,
            tenant=record.metadata.get(TENANT_KEY) or None, quality=quality, approval=approval,
            task=record.metadata.get(TASK_KEY) or None,
            schema_name=record.schema_name if record.format_type == "json_schema" else None,
        )  # fmt: skip


def deduplicated(pairs: Iterator[ApprovedPair]) -> list[ApprovedPair]:
    """One pair per (tenant, task, schema, prompt): the highest quality, then the newest; first-seen order."""
    best: dict[tuple[str | None, str | None, str | None, str], ApprovedPair] = {}
    for pair in pairs:
        key = (pair.tenant, pair.task, pair.schema_name, pair.prompt)
        kept = best.get(key)
        if kept is None or (pair.quality, pair.ts) >= (kept.quality, kept.ts):
            best[key] = pair
    return list(best.values())


def redacted(text: str) -> bool:
    """True when `text` holds a redaction tag (part of it was masked before it was stored)."""
    return any(tag in text for tag in REDACTION_TAGS)


def _approval(record: LogRecord, approve_escalations: bool = False) -> str | None:
    """ "feedback", "judge", "teach", "escalation" or None: why this record's large answer is approved."""
    if record.error is not None or record.tier is None or not (record.prompt or "").strip():
        return None  # failed, or redacted (only the prompt's hash kept)
    if record.feedback_rating == "BAD" or record.schema_valid is False:
        return None  # rated bad, or an answer that did not fit the request's schema
    answered = record.answered_tier
    if record.feedback_rating == "GOOD" and answered == "large":
        return "feedback"
    if record.label_source in ("judge", "teach"):
        return record.label_source
    if approve_escalations and record.escalated:
        return "escalation"
    return None


def _large_answer(store: RequestLogStore, record: LogRecord) -> str | None:
    if record.answered_tier == "large" and record.response and record.response.strip():
        return record.response.strip()
    if record.label_source != "judge":
        return None
    for answer in store.answers(record.request_id):
        if answer.tier == "large" and answer.error is None and answer.response and answer.response.strip():
            return answer.response.strip()
    return None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]
