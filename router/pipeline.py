"""One request's path: validate, score off the loop, decide, call the tier's model, fall back, count."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from classifier.text import TextOptions, scoring_text
from router.backends.litellm import DEADLINE_MARGIN_S, Backend, BackendCall
from router.config import RouterConfig
from router.domain import (
    ROLES,
    TIERS,
    CascadeTrace,
    Chunk,
    Completion,
    Decision,
    Escalation,
    Generation,
    GenerationDelta,
    Request,
    Tier,
)
from router.errors import AllTiersFailedError, BackendError, DeadlineExceededError, InvalidRequestError
from router.fewshot.exemplars import Selection, inject
from router.metrics import RouterMetrics
from router.routing.cascade import escalation, should_escalate
from router.routing.policy import decide
from router.routing.state import LiveState, RoutingState
from router.routing.verifying import AnswerVerifier, Sampled
from router.scoring_queue import ScoringQueue
from router.structured import (
    AnswerCheck,
    StructuredSpec,
    check_generation_params,
    check_reply,
    parse_structured,
)

if TYPE_CHECKING:
    from router.fewshot.runtime import FewShot

log = logging.getLogger(__name__)
T = TypeVar("T")
Shots = Callable[[], Selection]  # the request's few-shot exemplars, selected on first use


def _no_shots() -> Selection:
    return Selection()


# A fallback is not attempted with less time than this left before the client's deadline.
MIN_FALLBACK_S = 0.05
# A backend failure this close to the deadline is the deadline's doing (backend calls end
# DEADLINE_MARGIN_S before it).
DEADLINE_SLACK_S = 2 * DEADLINE_MARGIN_S


@dataclasses.dataclass(frozen=True)
class _Routed:
    """What routing one request produced besides its decision: the snapshot, scored text and embedding."""

    state: RoutingState
    text: str
    embedding: np.ndarray | None


def _verifies(decision: Decision, answered_by: Tier, fallback_reason: str) -> bool:
    """The cascade verifies a small answer that the policy sent to the small tier first (not a fallback)."""
    return (
        decision.mode == "cascade"
        and decision.tier == "small"
        and answered_by == "small"
        and not fallback_reason
    )


class Pipeline:
    """Route, Complete and CompleteStream on domain objects; `deadline` is a time.monotonic() instant."""

    def __init__(
        self,
        live: LiveState,
        scoring: ScoringQueue,
        backend: Backend,
        metrics: RouterMetrics,
        fewshot: FewShot | None = None,
        verifier: AnswerVerifier | None = None,
    ):
        self.live = live  # read once per request: config, target threshold and classifier together
        self.scoring = scoring
        self.backend = backend
        self.metrics = metrics
        self.fewshot = fewshot  # exemplars for small-tier calls
        # The cascade's verifiers (routing.mode: cascade).
        self.verifier = verifier if verifier is not None else AnswerVerifier(metrics)

    @property
    def config(self) -> RouterConfig:
        """The config being served now (a request keeps the snapshot it started with)."""
        return self.live.current.config

    async def route(self, request: Request) -> Decision:
        """Validate, score and decide; raises InvalidRequestError for bad input."""
        return (await self._route(request))[0]

    async def _route_with_shots(self, request: Request) -> tuple[Decision, Shots, _Routed]:
        decision, text, embedding, state = await self._route(request)
        routed = _Routed(state, text, embedding)
        fewshot = self.fewshot
        if fewshot is None:
            return decision, _no_shots, routed
        if decision.tier == "small" and fewshot.slow:
            selection = await fewshot.aselect(request, embedding, text)  # a large store: off the loop
            return decision, lambda: selection, routed
        # Lazy: selected only when the small tier is called (decided, or as a fallback), at most once.
        return decision, functools.cache(lambda: fewshot.select(request, embedding, text)), routed

    async def _route(self, request: Request) -> tuple[Decision, str, np.ndarray | None, RoutingState]:
        """(decision, scored text, its embedding when the classifier exposes it, the snapshot it used)."""
        # One snapshot per request, so a reload or a promotion never mixes into it.
        state = self.live.current
        config = state.config
        text = validated_scoring_text(request, config)
        started = time.perf_counter()
        score, version, embedding = await self.scoring.score_with_embedding(text, state.scorer)
        classify_s = time.perf_counter() - started
        self.metrics.classify_seconds.observe(classify_s)
        decision = decide(score, request, config, classifier_version=version, target=state.target)
        decision = dataclasses.replace(decision, classify_ms=classify_s * 1000, state_serial=state.serial)
        self.metrics.decisions.labels(decision.tier, decision.rule).inc()
        log.debug("request %s: %s score=%.3f (%s)", request.request_id, decision.tier, score, decision.reason)
        return decision, text, embedding, state

    async def complete(self, request: Request, deadline: float | None = None) -> Completion:
        """Route, then generate with the chosen tier (falling back to large when small fails).

        With `routing.speculative_small`, the small-tier call starts while the prompt is scored and is
        cancelled when the decision is not small.
        """
        started = time.perf_counter()
        spec = validated_spec(request)
        speculative = self._speculate(request, deadline, spec)
        try:
            decision, shots, routed = await self._route_with_shots(request)
        except BaseException:
            if speculative is not None:
                speculative.cancel()
            raise
        if speculative is not None and decision.tier != "small":
            speculative.cancel()
            self.metrics.speculative.labels("cancelled").inc()
            speculative = None
        elif speculative is not None:
            self.metrics.speculative.labels("used").inc()
        else:
            started = time.perf_counter()
        config = routed.state.config
        sample = self._sample(routed, request, decision, deadline, spec, shots)
        try:
            generation, answered_by, fallback_reason = await self._with_fallback(
                config, request, decision, deadline, self.backend.complete, spec, shots, first=speculative
            )
        except BaseException:
            _drop(sample)
            raise
        verdict = check_reply(spec, generation.text, generation.tool_calls)
        outcome, trace = Escalation(), None
        if _verifies(decision, answered_by, fallback_reason):
            self._count(answered_by, generation, started)
            started = time.perf_counter()
            large, outcome, trace = await self._cascade(
                routed, request, deadline, spec, generation, verdict, self.backend.complete, shots, sample
            )
            if large is not None:
                generation, answered_by = large, "large"
                verdict = check_reply(spec, generation.text, generation.tool_calls)
        elif decision.mode == "cascade":
            _drop(sample)
            self.metrics.cascade_answers.labels(
                "direct_large" if decision.tier == "large" else "fallback"
            ).inc()
        elif verdict.checked and not verdict.valid and answered_by == "small" and not fallback_reason:
            self._count(answered_by, generation, started)
            retried = await self._retry_invalid(config, request, decision, deadline, spec, verdict)
            if retried is not None:
                generation, answered_by, fallback_reason = retried
                verdict = check_reply(spec, generation.text, generation.tool_calls)
                started = time.perf_counter()
        if trace is None or outcome.escalated:  # a small answer that stands was counted before verifying
            self._count(answered_by, generation, started)
        return Completion(
            request_id=request.request_id,
            decision=decision,
            text=generation.text,
            model=generation.model,
            usage=generation.usage,
            cost_usd=generation.cost_usd,
            finish_reason=generation.finish_reason,
            fallback=bool(fallback_reason),
            fallback_reason=fallback_reason,
            exemplar_ids=shots().ids if answered_by == "small" else (),
            tool_calls=generation.tool_calls,
            schema_valid=verdict.valid,
            answer_error=verdict.error,
            escalation=outcome,
            cascade=trace,
        )

    async def _cascade(
        self,
        routed: _Routed,
        request: Request,
        deadline: float | None,
        spec: StructuredSpec,
        small: Generation,
        check: AnswerCheck,
        attempt: Callable[[BackendCall], Awaitable[T]],
        shots: Shots,
        sample: asyncio.Task[Generation] | None = None,
    ) -> tuple[T | None, Escalation, CascadeTrace]:
        """Verify the small answer; when it is not good enough and time allows, `attempt` the large tier.

        `shots`: the exemplars the small tier was given (the answer head reads how many). `sample`: the
        consistency verifier's second small answer, under way (None when consistency is off).

        Returns (the large tier's result, or None when the small answer stands; the contract's three
        fields; what the log keeps). Never raises for a verifier or the large call: the small answer
        stands, unverified, instead.
        """
        settings = routed.state.config.routing.cascade
        started = time.perf_counter()
        schema_valid = check.valid if check.checked else None
        sampled = await self._sampled(sample)
        verification = await self.verifier.verify(
            routed.state,
            settings,
            routed.text,
            routed.embedding,
            small,
            schema_valid,
            exemplars=len(shots().ids),
            sample=sampled,
        )
        checks = verification.checks
        self.metrics.cascade_verify_seconds.observe(time.perf_counter() - started)
        trace = CascadeTrace(small.text, small.model, verification.inputs_json())
        if not should_escalate(checks):
            self.metrics.cascade_answers.labels("small").inc()
            return None, escalation(checks, escalated=False), trace
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < settings.large_call_s:
            self.metrics.cascade_answers.labels("unverified").inc()
            reason = (
                f"no time left for a large-tier call ({max(left, 0.0):.2f} s < {settings.large_call_s:g} s)"
            )
            return None, escalation(checks, escalated=False, unverified=reason), trace
        # The large call ends early enough that the small answer can still be returned if it fails.
        large_deadline = None if deadline is None else deadline - DEADLINE_SLACK_S
        try:
            large = await attempt(self._call(routed.state.config, "large", request, large_deadline, spec))
        except BackendError as error:
            self.metrics.backend_errors.labels(error.tier, error.kind).inc()
            self.metrics.cascade_answers.labels("unverified").inc()
            log.warning(
                "request %s: escalation failed, the small answer stands: %s", request.request_id, error
            )
            reason = f"the large tier failed ({error.kind})"
            return None, escalation(checks, escalated=False, unverified=reason), trace
        added_s = time.perf_counter() - started
        self.metrics.cascade_escalation_seconds.observe(added_s)
        self.metrics.cascade_answers.labels("escalated").inc()
        return large, escalation(checks, escalated=True), dataclasses.replace(trace, added_ms=added_s * 1000)

    def _sample(
        self,
        routed: _Routed,
        request: Request,
        decision: Decision,
        deadline: float | None,
        spec: StructuredSpec,
        shots: Shots,
    ) -> asyncio.Task[Generation] | None:
        """The consistency verifier's second small-tier answer, started now, alongside the first: the same
        messages (and exemplars) sampled at `routing.cascade.consistency.temperature`, with no
        log-probabilities asked for. None unless the cascade will verify a small answer with it."""
        config = routed.state.config
        settings = config.routing.cascade
        if not (decision.mode == "cascade" and decision.tier == "small"):
            return None
        if not self.verifier.wants_sample(settings, config.tiers.small.model):
            return None
        try:
            call = self._call(config, "small", request, deadline, spec, shots)
        except BackendError:
            return None  # the first call fails the same way, and falls back
        seed = None if call.params.seed is None else call.params.seed + 1
        params = dataclasses.replace(call.params, temperature=settings.consistency.temperature, seed=seed)
        task = asyncio.ensure_future(self.backend.complete(dataclasses.replace(call, params=params)))
        task.add_done_callback(_retrieve)
        return task

    async def _sampled(self, sample: asyncio.Task[Generation] | None) -> Sampled | None:
        """The second answer once drawn (None when none was started); its failure leaves it without text."""
        if sample is None:
            return None
        try:
            return Sampled((await sample).text)
        except BackendError as error:
            self.metrics.backend_errors.labels(error.tier, error.kind).inc()
            return Sampled(None, f"the sample call failed ({error.kind})")

    async def _retry_invalid(
        self,
        config: RouterConfig,
        request: Request,
        decision: Decision,
        deadline: float | None,
        spec: StructuredSpec,
        verdict: AnswerCheck,
    ) -> tuple[Generation, Tier, str] | None:
        """A small answer that failed its check, asked again of the large tier when fallback allows it:
        (large answer, "large", reason), or None when no retry is allowed (the small answer stands)."""
        small = config.tiers.small.model
        error = BackendError("small", small, "invalid_answer", verdict.error)
        self.metrics.backend_errors.labels("small", "invalid_answer").inc()
        if not self._may_fall_back(config, decision, deadline, error):
            return None
        log.info(
            "request %s: the small tier's answer failed its check; asking the large tier", request.request_id
        )
        self.metrics.fallbacks.labels("invalid_answer").inc()
        try:
            generation = await self.backend.complete(self._call(config, "large", request, deadline, spec))
        except BackendError as second:
            self.metrics.backend_errors.labels(second.tier, second.kind).inc()
            if _expired(deadline):
                raise _final_error(second, deadline) from second
            raise AllTiersFailedError([error, second]) from second
        return generation, "large", f"small tier answer failed validation: {verdict.error}"

    def _count(self, tier: Tier, generation: Generation, started: float) -> None:
        usage = generation.usage
        self._count_generation(
            tier,
            usage.prompt_tokens,
            usage.completion_tokens,
            generation.cost_usd,
            time.perf_counter() - started,
        )

    async def stream(self, request: Request, deadline: float | None = None) -> AsyncGenerator[Chunk, None]:
        """As complete(), streamed: the first chunk carries the decision, the last usage and cost.

        Fallback happens only before the first chunk is sent; a failure mid-stream ends the stream
        with the error. An answer given a schema (or tools) is checked once complete: the last chunk
        carries `schema_valid` and the complete tool calls; a small answer that fails is not retried on
        the large tier, since part of it already reached the client.

        In cascade mode with `routing.cascade.stream: buffer` the small answer is generated whole and
        verified first, then sent (or the large tier's answer is streamed instead); with `off` it streams
        as generated, unverified. The last chunk carries the cascade's three fields.
        """
        spec = validated_spec(request)
        decision, shots, routed = await self._route_with_shots(request)
        config = routed.state.config
        cascading = decision.mode == "cascade" and decision.tier == "small"
        if cascading and config.routing.cascade.stream == "buffer":
            async with contextlib.aclosing(
                self._buffered(routed, request, decision, deadline, spec, shots)
            ) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        started = time.perf_counter()
        (first, deltas), answered_by, fallback_reason = await self._with_fallback(
            config, request, decision, deadline, self._open_stream, spec, shots, verify=False
        )
        outcome = Escalation()
        if cascading and answered_by == "small" and not fallback_reason:
            outcome = Escalation(reason="unverified: streamed as generated (routing.cascade.stream: off)")
            self.metrics.cascade_answers.labels("unverified").inc()
        relay = _Relay(decision, config.tiers.get(answered_by).model, request.request_id, fallback_reason)
        relay = dataclasses.replace(relay, exemplar_ids=shots().ids if answered_by == "small" else ())
        async with contextlib.aclosing(
            self._relay(relay, first, deltas, spec, answered_by, started, deadline, outcome, None)
        ) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _buffered(
        self,
        routed: _Routed,
        request: Request,
        decision: Decision,
        deadline: float | None,
        spec: StructuredSpec,
        shots: Shots,
    ) -> AsyncGenerator[Chunk, None]:
        """The cascade's buffered stream: the small answer whole and verified, then sent as two chunks; or
        the large tier's answer streamed after an escalation."""
        config = routed.state.config
        started = time.perf_counter()
        sample = self._sample(routed, request, decision, deadline, spec, shots)
        try:
            small, answered_by, fallback_reason = await self._with_fallback(
                config, request, decision, deadline, self.backend.complete, spec, shots
            )
        except BaseException:
            _drop(sample)
            raise
        verdict = check_reply(spec, small.text, small.tool_calls)
        self._count(answered_by, small, started)
        relay = _Relay(decision, small.model, request.request_id, fallback_reason)
        if answered_by == "small":
            relay = dataclasses.replace(relay, exemplar_ids=shots().ids)
        if not _verifies(decision, answered_by, fallback_reason):
            _drop(sample)
            self.metrics.cascade_answers.labels("fallback").inc()
            for chunk in _whole(relay, small, verdict, Escalation(), None):
                yield chunk
            return
        large, outcome, trace = await self._cascade(
            routed, request, deadline, spec, small, verdict, self._open_stream, shots, sample
        )
        if large is None:
            for chunk in _whole(
                dataclasses.replace(relay, escalation=outcome), small, verdict, outcome, trace
            ):
                yield chunk
            return
        first, deltas = large
        relay = _Relay(decision, config.tiers.large.model, request.request_id, "", escalation=outcome)
        async with contextlib.aclosing(
            self._relay(relay, first, deltas, spec, "large", time.perf_counter(), deadline, outcome, trace)
        ) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _relay(
        self,
        relay: _Relay,
        first: GenerationDelta,
        deltas: AsyncGenerator[GenerationDelta, None],
        spec: StructuredSpec,
        answered_by: Tier,
        started: float,
        deadline: float | None,
        outcome: Escalation,
        trace: CascadeTrace | None,
    ) -> AsyncGenerator[Chunk, None]:
        """A backend stream as chunks: the decision on the first, usage, checks and the cascade's fields
        on the last."""
        async with contextlib.aclosing(deltas):
            delta: GenerationDelta | None = first
            head = True
            text: list[str] = []
            while delta is not None:
                try:
                    text.append(delta.text)
                    chunk = _chunk(delta, relay, head=head)
                    if delta.usage is not None:  # the last piece: the whole answer is known
                        verdict = check_reply(spec, "".join(text), delta.tool_calls)
                        chunk = dataclasses.replace(
                            chunk,
                            schema_valid=verdict.valid,
                            answer_error=verdict.error,
                            escalation=outcome,
                            cascade=trace,
                        )
                    yield chunk
                    head = False
                    if delta.usage is not None:
                        self._count_generation(
                            answered_by,
                            delta.usage.prompt_tokens,
                            delta.usage.completion_tokens,
                            delta.cost_usd,
                            time.perf_counter() - started,
                        )
                    delta = await anext(deltas, None)
                except BackendError as error:
                    self.metrics.backend_errors.labels(error.tier, error.kind).inc()
                    raise _final_error(error, deadline) from error

    def _speculate(
        self, request: Request, deadline: float | None, spec: StructuredSpec
    ) -> asyncio.Task[Generation] | None:
        """The small-tier call as a task started now, when `routing.speculative_small` allows it."""
        config = self.live.current.config  # the snapshot _route() takes next, with no await in between
        # Few-shot exemplars are chosen from the routing embedding, which does not exist yet.
        few_shot = config.tiers.small.few_shot
        if not config.routing.speculative_small or request.force_tier or (few_shot and few_shot.enabled):
            return None
        validated_scoring_text(request, config)  # nothing invalid reaches a backend
        mode = "cascade" if config.routing.uses_cascade() else "route"
        try:
            call = self._call(config, "small", request, deadline, spec, cascade=mode)
        except BackendError:
            return None  # no key: the decision's own path reports it
        task = asyncio.get_running_loop().create_task(self.backend.complete(call))
        task.add_done_callback(_retrieved)  # a failure is awaited when used, dropped when cancelled
        return task

    async def _open_stream(
        self, call: BackendCall
    ) -> tuple[GenerationDelta, AsyncGenerator[GenerationDelta, None]]:
        # Pull the first delta now, so a backend that is down fails here, where fallback is still possible.
        deltas = self.backend.stream(call)
        first = await anext(deltas, None)
        if first is None:
            raise BackendError(call.tier, call.settings.model, "protocol", "the stream ended without a chunk")
        return first, deltas

    async def _with_fallback(
        self,
        config: RouterConfig,
        request: Request,
        decision: Decision,
        deadline: float | None,
        attempt: Callable[[BackendCall], Awaitable[T]],
        spec: StructuredSpec,
        shots: Shots = _no_shots,
        first: Awaitable[T] | None = None,
        verify: bool = True,
    ) -> tuple[T, Tier, str]:
        """Run `attempt` on the decided tier, then once on the other if allowed: (result, tier, reason).

        `config` is the snapshot the decision was made with, so a reload never mixes two configs. `first`,
        when given, is the decided tier's call already under way (a speculative small-tier call). `verify`
        False: a cascade-mode call that will not be verified (no log-probabilities are asked for).
        """
        mode = decision.mode if verify else "route"  # "route": no log-probabilities asked for
        try:
            if first is None:
                first = attempt(
                    self._call(config, decision.tier, request, deadline, spec, shots, cascade=mode)
                )
            return await first, decision.tier, ""
        except BackendError as error:
            self.metrics.backend_errors.labels(error.tier, error.kind).inc()
            if not self._may_fall_back(config, decision, deadline, error):
                raise _final_error(error, deadline) from error
            first_error = error
        other: Tier = "small" if decision.tier == "large" else "large"
        reason = _fallback_reason(first_error)
        # A tier without its key is announced once at start; every request using it is not worth a warning.
        # An open circuit was announced once when it opened (router.backends.breaker).
        level = logging.DEBUG if first_error.kind in ("unconfigured", "circuit_open") else logging.WARNING
        log.log(level, "request %s: falling back to the %s tier: %s", request.request_id, other, first_error)
        self.metrics.fallbacks.labels(first_error.kind).inc()
        try:
            return await attempt(self._call(config, other, request, deadline, spec, shots)), other, reason
        except BackendError as error:
            self.metrics.backend_errors.labels(error.tier, error.kind).inc()
            if _expired(deadline):
                raise _final_error(error, deadline) from error
            raise AllTiersFailedError([first_error, error]) from error

    def _may_fall_back(
        self, config: RouterConfig, decision: Decision, deadline: float | None, error: BackendError
    ) -> bool:
        # A forced tier is what the client asked for: answering with another would break that contract.
        if decision.rule == "forced" or not config.routing.fallback:
            return False
        # Large gives way to small only when it cannot be called at all (no key): an answer from the small
        # tier, flagged as a fallback, beats none; a large call that failed is not retried on a weaker model.
        if decision.tier == "large" and error.kind != "unconfigured":
            return False
        return deadline is None or deadline - time.monotonic() > MIN_FALLBACK_S

    def _call(
        self,
        config: RouterConfig,
        tier: Tier,
        request: Request,
        deadline: float | None,
        spec: StructuredSpec,
        shots: Shots = _no_shots,
        cascade: str = "route",
    ) -> BackendCall:
        """`cascade` "cascade": a small-tier call asks for log-probabilities (the confidence verifier and
        the answer head read them)."""
        settings = config.tiers.get(tier)
        if settings.missing_key_env:
            # Known without a network round trip: the call could only fail authentication.
            raise BackendError(
                tier, settings.model, "unconfigured", f"has no API key: set {settings.missing_key_env}"
            )
        messages = inject(request.messages, shots()) if tier == "small" else request.messages
        logprobs = cascade == "cascade" and tier == "small" and config.routing.cascade.reads_logprobs
        return BackendCall(tier, settings, messages, request.params, deadline, spec, logprobs=logprobs)

    def _count_generation(
        self, tier: Tier, prompt_tokens: int, completion_tokens: int, cost_usd: float, seconds: float
    ) -> None:
        self.metrics.completion_seconds.labels(tier).observe(seconds)
        self.metrics.tokens.labels(tier, "prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(tier, "completion").inc(completion_tokens)
        self.metrics.cost.labels(tier).inc(cost_usd)


def _drop(task: asyncio.Task[Generation] | None) -> None:
    """Cancel a consistency sample that is no longer needed (the answer fell back, or the call failed)."""
    if task is not None:
        task.cancel()


def _retrieve(task: asyncio.Future[Generation]) -> None:
    """Read a finished sample's exception, so one nobody awaited is not logged as never retrieved."""
    if not task.cancelled():
        task.exception()


def validated_spec(request: Request) -> StructuredSpec:
    """The request's generation params checked and its response format, tools and tool turns parsed;
    InvalidRequestError names the first problem."""
    params = request.params
    check_generation_params(
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        stop=params.stop,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
    )
    return parse_structured(request.response_format, request.tools, request.tool_choice, request.messages)


def validated_scoring_text(request: Request, config: RouterConfig) -> str:
    """The text to score, or InvalidRequestError saying what is wrong with the request."""
    if not request.messages:
        raise InvalidRequestError("messages is empty: send at least one message with role 'user'")
    for index, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise InvalidRequestError(
                f"messages[{index}].role is {message.role!r}; expected one of {', '.join(sorted(ROLES))}"
            )
    if request.force_tier and request.force_tier not in TIERS:
        raise InvalidRequestError(f"force_tier is {request.force_tier!r}; expected '', 'small' or 'large'")
    size = sum(len(message.content) for message in request.messages)
    limit = config.routing.max_prompt_chars
    if size > limit:
        raise InvalidRequestError(f"the messages hold {size} characters, over the limit of {limit}")
    routing = config.routing
    options = TextOptions(
        context_turns=routing.context_turns,
        context_chars=routing.context_chars,
        continuations=routing.continuations == "task",
    )
    text = scoring_text(request.messages, options)
    if not text.strip():
        if not any(message.role == "user" for message in request.messages):
            raise InvalidRequestError("no message has role 'user': there is nothing to route")
        raise InvalidRequestError("the last user message is empty")
    return text


@dataclasses.dataclass(frozen=True)
class _Relay:
    """What every chunk of one stream repeats or opens with."""

    decision: Decision
    model: str
    request_id: str
    fallback_reason: str
    exemplar_ids: tuple[str, ...] = ()
    # Known before the first chunk in a buffered cascade stream; the HTTP door's x-rightsize-escalated
    # header reads it there (gRPC clients read it on the last chunk).
    escalation: Escalation = Escalation()


def _chunk(delta: GenerationDelta, relay: _Relay, *, head: bool) -> Chunk:
    return Chunk(
        delta=delta.text,
        decision=relay.decision if head else None,
        model=relay.model if head else "",
        request_id=relay.request_id if head else "",
        fallback=bool(relay.fallback_reason),
        fallback_reason=relay.fallback_reason if head else "",
        usage=delta.usage,
        cost_usd=delta.cost_usd,
        finish_reason=delta.finish_reason,
        tool_call_deltas=delta.tool_call_deltas,
        tool_calls=delta.tool_calls,
        exemplar_ids=relay.exemplar_ids if head else (),
        escalation=relay.escalation if head else Escalation(),
    )


def _whole(
    relay: _Relay,
    answer: Generation,
    verdict: AnswerCheck,
    outcome: Escalation,
    trace: CascadeTrace | None,
) -> tuple[Chunk, Chunk]:
    """A complete answer as a stream: its text on the first chunk, usage and verdicts on the last."""
    head = _chunk(GenerationDelta(answer.text), relay, head=True)
    last = GenerationDelta(
        "", answer.finish_reason, answer.usage, answer.cost_usd, tool_calls=answer.tool_calls
    )
    tail = dataclasses.replace(
        _chunk(last, relay, head=False),
        schema_valid=verdict.valid,
        answer_error=verdict.error,
        escalation=outcome,
        cascade=trace,
    )
    return head, tail


def _fallback_reason(error: BackendError) -> str:
    if error.kind == "unconfigured":
        return f"{error.tier} tier {error.model} {error.detail}"
    return f"{error.tier} tier failed ({error.kind}): {error.detail}"


def _retrieved(task: asyncio.Task[Generation]) -> None:
    """Mark a speculative call's outcome as seen, so asyncio does not log an unretrieved failure."""
    if not task.cancelled():
        task.exception()


def _expired(deadline: float | None) -> bool:
    return deadline is not None and deadline - time.monotonic() < DEADLINE_SLACK_S


def _final_error(error: BackendError, deadline: float | None) -> Exception:
    if _expired(deadline):
        return DeadlineExceededError(f"deadline exceeded waiting for the {error.tier} tier ({error.model})")
    return error
