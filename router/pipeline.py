"""One request's path: validate, score off the loop, decide, call the tier's model, fall back, count."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from classifier.text import TextOptions, scoring_text
from router.backends import DEADLINE_MARGIN_S, Backend, BackendCall
from router.config import RouterConfig
from router.domain import (
    ROLES,
    TIERS,
    Chunk,
    Completion,
    Decision,
    GenerationDelta,
    Request,
    Tier,
)
from router.errors import AllTiersFailedError, BackendError, DeadlineExceededError, InvalidRequestError
from router.metrics import RouterMetrics
from router.policy import decide
from router.scoring import ScoringQueue

log = logging.getLogger(__name__)
T = TypeVar("T")
# A fallback is not attempted with less time than this left before the client's deadline.
MIN_FALLBACK_S = 0.05
# A backend failure this close to the deadline is the deadline's doing (backend calls end
# DEADLINE_MARGIN_S before it).
DEADLINE_SLACK_S = 2 * DEADLINE_MARGIN_S


class Pipeline:
    """Route, Complete and CompleteStream on domain objects; `deadline` is a time.monotonic() instant."""

    def __init__(self, config: RouterConfig, scoring: ScoringQueue, backend: Backend, metrics: RouterMetrics):
        self.config = config
        self.scoring = scoring
        self.backend = backend
        self.metrics = metrics

    async def route(self, request: Request) -> Decision:
        """Validate, score and decide; raises InvalidRequestError for bad input."""
        config = self.config  # one snapshot per request, so a reload never mixes two configs
        text = validated_scoring_text(request, config)
        started = time.perf_counter()
        score = await self.scoring.score(text)
        self.metrics.classify_seconds.observe(time.perf_counter() - started)
        decision = decide(score, request, config, classifier_version=self.scoring.scorer.version)
        self.metrics.decisions.labels(decision.tier, decision.rule).inc()
        log.debug("request %s: %s score=%.3f (%s)", request.request_id, decision.tier, score, decision.reason)
        return decision

    async def complete(self, request: Request, deadline: float | None = None) -> Completion:
        """Route, then generate with the chosen tier (falling back to large when small fails)."""
        decision = await self.route(request)
        started = time.perf_counter()
        generation, answered_by, fallback_reason = await self._with_fallback(
            request, decision, deadline, self.backend.complete
        )
        usage = generation.usage
        self._count_generation(answered_by, usage.prompt_tokens, usage.completion_tokens,
                               generation.cost_usd, time.perf_counter() - started)
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
        )

    async def stream(self, request: Request, deadline: float | None = None) -> AsyncGenerator[Chunk, None]:
        """As complete(), streamed: the first chunk carries the decision, the last usage and cost.

        Fallback happens only before the first chunk is sent; a failure mid-stream ends the stream
        with the error.
        """
        decision = await self.route(request)
        started = time.perf_counter()
        (first, deltas), answered_by, fallback_reason = await self._with_fallback(
            request, decision, deadline, self._open_stream
        )
        model = self.config.tiers.get(answered_by).model
        async with contextlib.aclosing(deltas):
            delta: GenerationDelta | None = first
            head = True
            while delta is not None:
                try:
                    yield _chunk(delta, decision, model, request.request_id, fallback_reason, head=head)
                    head = False
                    if delta.usage is not None:
                        self._count_generation(answered_by, delta.usage.prompt_tokens,
                                               delta.usage.completion_tokens, delta.cost_usd,
                                               time.perf_counter() - started)
                    delta = await anext(deltas, None)
                except BackendError as error:
                    self.metrics.backend_errors.labels(error.tier, error.kind).inc()
                    raise _final_error(error, deadline) from error

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
        request: Request,
        decision: Decision,
        deadline: float | None,
        attempt: Callable[[BackendCall], Awaitable[T]],
    ) -> tuple[T, Tier, str]:
        """Run `attempt` on the decided tier, then once on large if allowed: (result, tier, reason)."""
        try:
            return await attempt(self._call(decision.tier, request, deadline)), decision.tier, ""
        except BackendError as error:
            self.metrics.backend_errors.labels(error.tier, error.kind).inc()
            if not self._may_fall_back(decision, deadline):
                raise _final_error(error, deadline) from error
            first_error = error
        reason = f"small tier failed ({first_error.kind}): {first_error.detail}"
        log.warning("request %s: falling back to the large tier: %s", request.request_id, first_error)
        self.metrics.fallbacks.labels(first_error.kind).inc()
        try:
            return await attempt(self._call("large", request, deadline)), "large", reason
        except BackendError as error:
            self.metrics.backend_errors.labels(error.tier, error.kind).inc()
            if _expired(deadline):
                raise _final_error(error, deadline) from error
            raise AllTiersFailedError([first_error, error]) from error

    def _may_fall_back(self, decision: Decision, deadline: float | None) -> bool:
        # A forced tier is what the client asked for: answering with another would break that contract.
        if decision.tier != "small" or decision.rule == "forced" or not self.config.routing.fallback:
            return False
        return deadline is None or deadline - time.monotonic() > MIN_FALLBACK_S

    def _call(self, tier: Tier, request: Request, deadline: float | None) -> BackendCall:
        return BackendCall(tier, self.config.tiers.get(tier), request.messages, request.params, deadline)

    def _count_generation(
        self, tier: Tier, prompt_tokens: int, completion_tokens: int, cost_usd: float, seconds: float
    ) -> None:
        self.metrics.completion_seconds.labels(tier).observe(seconds)
        self.metrics.tokens.labels(tier, "prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(tier, "completion").inc(completion_tokens)
        self.metrics.cost.labels(tier).inc(cost_usd)


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
    options = TextOptions(context_turns=routing.context_turns, context_chars=routing.context_chars)
    text = scoring_text(request.messages, options)
    if not text.strip():
        if not any(message.role == "user" for message in request.messages):
            raise InvalidRequestError("no message has role 'user': there is nothing to route")
        raise InvalidRequestError("the last user message is empty")
    return text


def _chunk(
    delta: GenerationDelta,
    decision: Decision,
    model: str,
    request_id: str,
    fallback_reason: str,
    *,
    head: bool,
) -> Chunk:
    return Chunk(
        delta=delta.text,
        decision=decision if head else None,
        model=model if head else "",
        request_id=request_id if head else "",
        fallback=bool(fallback_reason),
        fallback_reason=fallback_reason if head else "",
        usage=delta.usage,
        cost_usd=delta.cost_usd,
        finish_reason=delta.finish_reason,
    )


def _expired(deadline: float | None) -> bool:
    return deadline is not None and deadline - time.monotonic() < DEADLINE_SLACK_S


def _final_error(error: BackendError, deadline: float | None) -> Exception:
    if _expired(deadline):
        return DeadlineExceededError(f"deadline exceeded waiting for the {error.tier} tier ({error.model})")
    return error
