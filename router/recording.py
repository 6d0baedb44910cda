"""The request log at the service's edge: one LogRecord per Route/Complete/CompleteStream call, and Feedback.

`RecordingPipeline` offers the Pipeline's calls and logs each exactly once, whether it succeeded, failed
or was cancelled. Logging stays off the hot path: in `log.sync: batch` mode a record is handed to the
writer's in-memory queue (no I/O); in `strict` mode the answer waits, off the event loop, until the record
is stored or fsync'd to the spill file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from router.backends.litellm import Backend
from router.config import RouterConfig
from router.domain import (
    CascadeTrace,
    Chunk,
    Completion,
    Decision,
    Escalation,
    Feedback,
    Request,
    ToolCall,
    Usage,
)
from router.errors import InvalidRequestError, NotFoundError, NotReadyError
from router.learning.feedback import feedback_label
from router.learning.shadow import ShadowMetrics, ShadowSampler
from router.pipeline import Pipeline, validated_scoring_text
from router.redact import redacted
from router.requestlog import (
    LogRecord,
    PrometheusLogMetrics,
    RequestLogStore,
    RequestLogWriter,
    open_store,
    prompt_digest,
)
from router.requestlog.records import Rpc
from router.structured import schema_name_of

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# Feedback for an answer given moments ago waits this long for its record to reach the store.
FEEDBACK_WAIT_S = 5.0
# Shadow calls still running at shutdown get this long; they are best-effort and must not hold the drain up.
SHADOW_GRACE_S = 2.0


@dataclass
class _Outcome:
    """What one call produced, gathered as it runs."""

    decision: Decision | None = None
    model: str | None = None
    text: list[str] = field(default_factory=list)
    usage: Usage | None = None
    cost_usd: float | None = None
    fallback: bool = False
    fallback_reason: str = ""
    error: str | None = None
    exemplar_ids: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    schema_valid: bool | None = None  # None: no answer, or nothing to check
    escalation: Escalation = field(default_factory=Escalation)
    cascade: CascadeTrace | None = None  # the cascade verified a small answer


class RecordingPipeline:
    """Route, Complete, CompleteStream and Feedback, with every call logged once."""

    def __init__(
        self,
        pipeline: Pipeline,
        writer: RequestLogWriter,
        store: RequestLogStore,
        shadow: ShadowSampler | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.writer = writer
        self.store = store  # for Feedback; the writer has its own connection
        self.shadow = shadow
        self._background: set[asyncio.Future[Any]] = set()

    async def route(self, request: Request) -> Decision:
        started, outcome = time.perf_counter(), _Outcome()
        try:
            outcome.decision = await self.pipeline.route(request)
        except BaseException as exc:
            outcome.error = _describe(exc)
            self._log_later("Route", request, started, outcome)
            raise
        await self._log("Route", request, started, outcome)
        return outcome.decision

    async def complete(self, request: Request, deadline: float | None = None) -> Completion:
        started, outcome = time.perf_counter(), _Outcome()
        try:
            completion = await self.pipeline.complete(request, deadline)
        except BaseException as exc:
            outcome.error = _describe(exc)
            self._log_later("Complete", request, started, outcome)
            raise
        _fill(outcome, completion)
        await self._log("Complete", request, started, outcome)
        if self.shadow is not None and self.shadow.wants(completion):
            self.shadow.start(request, completion, small_ms=(time.perf_counter() - started) * 1000)
        return completion

    async def stream(self, request: Request, deadline: float | None = None) -> AsyncGenerator[Chunk, None]:
        started, outcome = time.perf_counter(), _Outcome()
        try:
            async with contextlib.aclosing(self.pipeline.stream(request, deadline)) as chunks:
                async for chunk in chunks:
                    _add_chunk(outcome, chunk)
                    yield chunk
        except BaseException as exc:  # includes the client going away (GeneratorExit, CancelledError)
            outcome.error = _describe(exc)
            self._log_later("CompleteStream", request, started, outcome)
            raise
        await self._log("CompleteStream", request, started, outcome)
        completion = _as_completion(request, outcome)
        if self.shadow is not None and completion is not None and self.shadow.wants(completion):
            self.shadow.start(request, completion, small_ms=(time.perf_counter() - started) * 1000)

    async def feedback(self, feedback: Feedback) -> None:
        """Label the logged request (the last feedback wins); NotFoundError for an unknown request_id."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.writer.wait_logged, feedback.request_id, FEEDBACK_WAIT_S)
        record = await loop.run_in_executor(None, self.store.get, feedback.request_id)
        if record is None:
            if self.writer.spill.has_backlog():
                raise NotReadyError(
                    "the request log is replaying records spilled while its store was down; retry shortly"
                )
            raise NotFoundError(f"no logged request with request_id {feedback.request_id!r}")
        label = redacted(feedback_label(record, feedback), self.writer.redactor)  # the comment is free text
        if not await loop.run_in_executor(None, self.store.set_label, feedback.request_id, label):
            raise NotFoundError(f"no logged request with request_id {feedback.request_id!r}")

    async def aclose(self, timeout_s: float) -> None:
        """Let background work (shadow calls, strict-mode error records) finish for `timeout_s` at most."""
        if self.shadow is not None:
            await self.shadow.aclose(min(timeout_s, SHADOW_GRACE_S))
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    # -- records --------------------------------------------------------------------------------------
    async def _log(self, rpc: Rpc, request: Request, started: float, outcome: _Outcome) -> None:
        record = self._record(rpc, request, started, outcome)
        if self.writer.sync == "strict":
            await asyncio.get_running_loop().run_in_executor(None, self.writer.submit, record)
        else:
            self.writer.submit(record)  # an in-memory append; never raises in batch mode

    def _log_later(self, rpc: Rpc, request: Request, started: float, outcome: _Outcome) -> None:
        """Log without awaiting (the caller is being cancelled or closed and may not await)."""
        record = self._record(rpc, request, started, outcome)
        if self.writer.sync != "strict":
            self.writer.submit(record)
            return
        future = asyncio.get_running_loop().run_in_executor(None, self.writer.submit, record)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def _record(self, rpc: Rpc, request: Request, started: float, outcome: _Outcome) -> LogRecord:
        total_ms = (time.perf_counter() - started) * 1000
        prompt = _prompt_text(request, self.pipeline)
        decision = outcome.decision
        return LogRecord(
            request_id=request.request_id,
            ts=datetime.now(UTC),
            rpc=rpc,
            prompt_sha256=prompt_digest(prompt),
            metadata=request.metadata,
            prompt=prompt,
            score=decision.score if decision else None,
            threshold=decision.threshold if decision else None,
            rule=decision.rule if decision else None,
            tier=decision.tier if decision else None,
            model=outcome.model or (decision.model if decision else None),
            classifier_version=decision.classifier_version if decision else None,
            fallback=outcome.fallback,
            fallback_reason=outcome.fallback_reason or None,
            classify_ms=decision.classify_ms if decision else None,
            total_ms=total_ms,
            prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else None,
            completion_tokens=outcome.usage.completion_tokens if outcome.usage else None,
            cost_usd=outcome.cost_usd,
            error=outcome.error,
            response="".join(outcome.text) if outcome.usage is not None else None,
            exemplar_ids=outcome.exemplar_ids,
            format_type=request.response_format.type or "text",
            schema_name=schema_name_of(request.response_format),
            schema_valid=outcome.schema_valid,
            tools_offered=len(request.tools),
            tool_calls=tuple(call.name for call in outcome.tool_calls),
            **_cascade_fields(decision, outcome),
        )


def _cascade_fields(decision: Decision | None, outcome: _Outcome) -> dict[str, Any]:
    """The log's cascade columns: the mode always, the verdict only for a small answer it verified."""
    trace = outcome.cascade
    if trace is None:
        return {"mode": decision.mode if decision else None}
    escalation = outcome.escalation
    return {
        "mode": "cascade",
        "escalated": escalation.escalated,
        "escalation_reason": escalation.reason or None,
        "verifier_score": escalation.score,
        "small_response": trace.small_answer,
        "small_model": trace.small_model,
        "verifier_inputs": trace.verifier_inputs,
        "escalation_ms": trace.added_ms,
    }


def _prompt_text(request: Request, pipeline: Pipeline) -> str:
    """The scored text; for a request too malformed to score, its messages' contents."""
    try:
        return validated_scoring_text(request, pipeline.config)
    except InvalidRequestError:
        return "\n".join(message.content for message in request.messages)


def _fill(outcome: _Outcome, completion: Completion) -> None:
    outcome.decision = completion.decision
    outcome.model = completion.model
    outcome.text = [completion.text]
    outcome.usage = completion.usage
    outcome.cost_usd = completion.cost_usd
    outcome.fallback = completion.fallback
    outcome.fallback_reason = completion.fallback_reason
    outcome.exemplar_ids = completion.exemplar_ids
    outcome.tool_calls = completion.tool_calls
    outcome.schema_valid = _checked(completion.schema_valid, completion.answer_error)
    outcome.escalation = completion.escalation
    outcome.cascade = completion.cascade


def _checked(valid: bool, error: str) -> bool | None:
    """schema_valid for the log: None when nothing was checked (no error and not valid)."""
    return True if valid else (False if error else None)


def _add_chunk(outcome: _Outcome, chunk: Chunk) -> None:
    if chunk.decision is not None:
        outcome.decision = chunk.decision
        outcome.model = chunk.model or None
        outcome.fallback = chunk.fallback
        outcome.fallback_reason = chunk.fallback_reason
        outcome.exemplar_ids = chunk.exemplar_ids
    outcome.text.append(chunk.delta)
    if chunk.usage is not None:
        outcome.usage = chunk.usage
        outcome.cost_usd = chunk.cost_usd
        outcome.tool_calls = chunk.tool_calls
        outcome.schema_valid = _checked(chunk.schema_valid, chunk.answer_error)
        outcome.escalation = chunk.escalation
        outcome.cascade = chunk.cascade


def _as_completion(request: Request, outcome: _Outcome) -> Completion | None:
    if outcome.decision is None or outcome.usage is None:
        return None
    return Completion(
        request_id=request.request_id, decision=outcome.decision, text="".join(outcome.text),
        model=outcome.model or outcome.decision.model, usage=outcome.usage, cost_usd=outcome.cost_usd or 0.0,
        finish_reason="", fallback=outcome.fallback, fallback_reason=outcome.fallback_reason,
        tool_calls=outcome.tool_calls, schema_valid=bool(outcome.schema_valid),
    )  # fmt: skip


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "cancelled: the client went away or its deadline passed"
    return f"{type(exc).__name__}: {exc}"[:1000]


class RequestRecorder:
    """The server's request log: store, writer, metrics, shadow sampler, and the recording pipeline."""

    def __init__(
        self,
        config: RouterConfig,
        pipeline: Pipeline,
        backend: Backend,
        registry: CollectorRegistry,
        replica_id: str | None = None,
    ) -> None:
        settings = config.log
        self.settings = settings
        strict = settings.sync == "strict"
        self.sink = open_store(settings.url, timeout_ms=settings.timeout_ms, durable=strict)
        # A second connection for Feedback and shadow answers, so they never queue behind a batch insert.
        self.store = open_store(settings.url, timeout_ms=settings.timeout_ms)
        metrics = PrometheusLogMetrics(registry)
        self.writer = RequestLogWriter.from_settings(settings, self.sink, metrics, replica_id)
        metrics.track(self.writer)
        shadow = ShadowSampler(
            lambda: pipeline.config, backend, self.writer, self.store, ShadowMetrics(registry)
        )
        self.pipeline = RecordingPipeline(pipeline, self.writer, self.store, shadow)

    def start(self) -> None:
        """Start the writer (it replays spill files left by an earlier run first)."""
        self.writer.start()

    async def aclose(self, timeout_s: float) -> bool:
        """Finish background work, then write (or spill and fsync) every queued record; True when stored."""
        await self.pipeline.aclose(timeout_s)
        loop = asyncio.get_running_loop()
        clean = await loop.run_in_executor(None, self.writer.close, max(timeout_s, 1.0))
        self.sink.close()
        self.store.close()
        return clean
