"""The teacher step: the large tier answers a task's inputs, and each answer that validates is stored in the
request log as an approved exemplar (label source "teach") for that task and tenant.

Stored this way, a taught pair is at once what few-shot (source `logs`) and `rightsize export-finetune`
read, and a running server loads it at its next few-shot refresh. Each input's record id is a digest of
(task, tenant, schema, system, input), so a second run finds what the first taught and skips it. The log
is written through its own connection in short transactions, off the event loop: the server never waits
on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from router.backends.litellm import Backend, BackendCall
from router.config import RouterConfig
from router.domain import GenerationParams, Message, ResponseFormat
from router.errors import BackendError, InvalidRequestError
from router.fewshot.settings import TASK_KEY, TENANT_KEY
from router.redact import redacted, redactor_for
from router.requestlog import Label, LogRecord, RequestLogStore, prompt_digest
from router.structured import StructuredSpec, check_reply, parse_structured, schema_name_of

SOURCE = "teach"
METADATA_SOURCE_KEY = "source"  # taught records carry metadata source=teach, besides task and tenant


@dataclass(frozen=True)
class TeachTask:
    """What is taught: the task's name, its tenant, its schema (JSON text, "" for free text), a system
    prompt sent before each input, and the schema's name (what requests of the task send)."""

    task: str
    tenant: str | None = None
    schema_json: str = ""
    schema_name: str = ""
    system: str = ""

    def spec(self) -> StructuredSpec:
        """The response format every input is asked with; InvalidRequestError for a bad schema."""
        if not self.schema_json:
            return parse_structured()
        return parse_structured(ResponseFormat("json_schema", self.schema_json, self.schema_name))

    def request_id(self, text: str) -> str:
        """The input's stable record id: the same input of the same task is taught once."""
        parts = (self.task, self.tenant or "", self.schema_json, self.system, text)
        return "teach-" + hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]


@dataclass
class TeachRun:
    """Counts of one run; cost in USD."""

    inputs: int
    taught: int = 0
    skipped: int = 0  # taught by an earlier run
    invalid: int = 0  # answered, but the answer failed its check
    failed: int = 0  # the call failed
    cost_usd: float = 0.0
    stopped_at_budget: bool = False
    errors: list[str] = field(default_factory=list)  # the first few, for the summary

    @property
    def done(self) -> int:
        return self.taught + self.skipped + self.invalid + self.failed


def read_inputs(lines: Sequence[str]) -> list[str]:
    """Task inputs from JSONL lines: a JSON string, or an object with "input"; ValueError names the line."""
    inputs = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"line {number}: not JSON: {exc}") from exc
        if isinstance(value, dict):
            value = value.get("input")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f'line {number}: expected a JSON string or {{"input": "..."}} with text')
        inputs.append(value.strip())
    return inputs


class Teach:
    """Sends inputs to the large tier through `backend` (the server's tier stack) and stores valid answers."""

    def __init__(
        self,
        config: RouterConfig,
        store: RequestLogStore,
        backend: Backend,
        task: TeachTask,
        *,
        budget_usd: float | None = None,
        concurrency: int = 4,
        timeout_s: float = 120.0,
        on_progress: Callable[[TeachRun], None] = lambda run: None,
    ) -> None:
        if concurrency < 1:
            raise InvalidRequestError("concurrency must be at least 1")
        self.config = config
        self.store = store
        self.backend = backend
        self.task = task
        self.spec = task.spec()
        self.budget_usd = budget_usd
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.on_progress = on_progress
        self.redactor = redactor_for(config.log.redact)

    async def run(self, inputs: Sequence[str]) -> TeachRun:
        """Teach every input not taught yet, `concurrency` at a time; no new call starts once the spend
        reaches the budget (calls under way finish, so the spend may pass it by up to that many answers)."""
        run = TeachRun(inputs=len(inputs))
        loop = asyncio.get_running_loop()
        pending = iter(list(dict.fromkeys(inputs)))
        run.skipped += len(inputs) - len(dict.fromkeys(inputs))  # duplicates within the file

        async def worker() -> None:
            for text in pending:
                if self.budget_usd is not None and run.cost_usd >= self.budget_usd:
                    run.stopped_at_budget = True
                    return
                request_id = self.task.request_id(text)
                if await loop.run_in_executor(None, self.store.get, request_id) is not None:
                    run.skipped += 1
                else:
                    await self._teach_one(text, request_id, run)
                self.on_progress(run)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return run

    async def _teach_one(self, text: str, request_id: str, run: TeachRun) -> None:
        settings = self.config.tiers.large
        messages = [Message("system", self.task.system)] if self.task.system else []
        messages.append(Message("user", text))
        call = BackendCall(
            "large", settings, messages, GenerationParams(), time.monotonic() + self.timeout_s, self.spec
        )
        started = time.perf_counter()
        try:
            generation = await self.backend.complete(call)
        except BackendError as error:
            run.failed += 1
            self._note(run, f"{text[:40]!r}: {error}")
            return
        run.cost_usd += generation.cost_usd
        verdict = check_reply(self.spec, generation.text, generation.tool_calls)
        answer = generation.text.strip()
        if (verdict.checked and not verdict.valid) or not answer:
            run.invalid += 1
            self._note(run, f"{text[:40]!r}: {verdict.error or 'empty answer'}")
            return
        metadata = {TASK_KEY: self.task.task, METADATA_SOURCE_KEY: SOURCE}
        if self.task.tenant:
            metadata[TENANT_KEY] = self.task.tenant
        record = LogRecord(
            request_id=request_id, ts=datetime.now(UTC), rpc="Complete", prompt_sha256=prompt_digest(text),
            metadata=metadata, prompt=text, tier="large", model=generation.model,
            total_ms=(time.perf_counter() - started) * 1000, prompt_tokens=generation.usage.prompt_tokens,
            completion_tokens=generation.usage.completion_tokens, cost_usd=generation.cost_usd,
            response=answer, format_type=self.spec.format_type,
            schema_name=schema_name_of(self.spec.response_format),
            schema_valid=verdict.valid if verdict.checked else None,
        )  # fmt: skip
        record = redacted(record, self.redactor)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._store, record)
        run.taught += 1

    def _store(self, record: LogRecord) -> None:
        self.store.write_batch([record])
        self.store.set_label(record.request_id, Label(small_ok=None, source=SOURCE))

    @staticmethod
    def _note(run: TeachRun, error: str) -> None:
        if len(run.errors) < 5:
            run.errors.append(error)
