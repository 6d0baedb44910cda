"""Running the cascade's verifiers on one small-tier answer, cheapest first, and what they saw (for the log).

The verdict logic is router.routing.cascade (pure); this module feeds it: the form and confidence checks
on the event loop (microseconds), the answer head too when it reads scalar features only (the shipped one),
off the loop when it embeds the answer (a few ms), and counts each verifier's outcome in metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from router.config.cascade import CascadeSettings
from router.domain import Generation
from router.routing.cascade import (
    Check,
    confidence_check,
    consistency_check,
    form_check,
    head_check,
    token_logprobs,
)
from router.routing.state import RoutingState

if TYPE_CHECKING:
    from router.metrics import RouterMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verification:
    """The checks that ran (in order, the last one decided) and the inputs they read, as JSON-ready."""

    checks: tuple[Check, ...]
    inputs: dict[str, Any] = field(default_factory=dict)

    def inputs_json(self) -> str:
        return json.dumps(self.inputs, separators=(",", ":"), sort_keys=True)


class AnswerVerifier:
    """The verifiers of `routing.cascade`, with their outcomes counted in `metrics`."""

    def __init__(self, metrics: RouterMetrics, on_logprobs: Callable[[bool], None] | None = None) -> None:
        self.metrics = metrics
        self._warned_no_logprobs = False
        # Told whether the small tier's answers carry log-probabilities, each time that changes (health).
        self.on_logprobs = on_logprobs
        self._logprobs_present: bool | None = None

    async def verify(
        self,
        state: RoutingState,
        settings: CascadeSettings,
        prompt: str,
        embedding: np.ndarray | None,
        generation: Generation,
        schema_valid: bool | None,
        exemplars: int = 0,
        sample: Sampled | None = None,
    ) -> Verification:
        """Run form, confidence, consistency, head (those switched on) until one fails; `prompt` is the
        scored text, `exemplars` how many few-shot exemplars the small tier was given, `sample` the
        consistency verifier's second answer (None: none was drawn for this call, so it does not run)."""
        from classifier.answer import AnswerInput, agreement_score, confidence_features

        tokens = token_logprobs(generation.logprobs)
        inputs: dict[str, Any] = {
            "finish_reason": generation.finish_reason,
            "completion_tokens": generation.usage.completion_tokens,
            "schema_valid": schema_valid,
            "logprob_tokens": len(tokens) if tokens else 0,
            "exemplars": exemplars,
        }
        checks: list[Check] = []
        if settings.form.enabled:
            checks.append(
                form_check(
                    generation.text,
                    settings.form,
                    finish_reason=generation.finish_reason,
                    completion_tokens=generation.usage.completion_tokens,
                    schema_valid=schema_valid,
                )
            )
        features = confidence_features(tokens)
        if features is not None:
            inputs.update(
                mean_logprob=round(features.mean_logprob, 5),
                min_logprob=round(features.min_logprob, 5),
                mean_margin=round(features.mean_margin, 5),
                low_confidence_share=round(features.low_confidence_share, 5),
            )
        if settings.reads_logprobs and generation.text:
            # Asked for, whatever reads them: whether an answer's came is what health and `auto` sampling
            # go by (an empty answer has no tokens to carry any, so it tells nothing).
            self._logprobs_seen(features is not None, generation.model)
        if settings.confidence.enabled and not _failed(checks):
            checks.append(confidence_check(features, settings.confidence))
        if sample is not None:
            inputs["sample"] = sample.text
        if sample is not None and not _failed(checks):
            agreement = None if sample.text is None else agreement_score(generation.text, sample.text)
            checks.append(consistency_check(agreement, settings.consistency, sample.error))
        if settings.head.enabled and not _failed(checks):
            item = AnswerInput(
                prompt=prompt,
                answer=generation.text,
                finish_reason=generation.finish_reason or None,
                completion_tokens=generation.usage.completion_tokens,
                logprobs=tokens,
                schema_valid=schema_valid,
                sample=None if sample is None else sample.text,
                exemplars=exemplars,
            )
            checks.append(await self._head(state, settings, item, embedding))
            if state.verifier is not None:
                inputs["head_version"] = state.verifier.version
        for check in checks:
            self.metrics.cascade_verdicts.labels(check.verifier, check.outcome).inc()
        inputs["checks"] = {c.verifier: [c.outcome, c.value] for c in checks}
        return Verification(tuple(checks), inputs)

    def wants_sample(self, settings: CascadeSettings, small_model: str) -> bool:
        """Whether a small answer to verify gets the consistency verifier's second answer: always with
        `enabled: true`; with `auto`, when the small tier cannot or did not return log-probabilities."""
        from router.backends.litellm import supports_logprobs

        enabled = settings.consistency.enabled
        if enabled == "auto":
            return not supports_logprobs(small_model) or self._logprobs_present is False
        return bool(enabled)

    async def _head(
        self, state: RoutingState, settings: CascadeSettings, item: Any, embedding: np.ndarray | None
    ) -> Check:
        head = state.verifier
        if head is None:
            return head_check(None, settings.head, state.verifier_error or "the answer head is not loaded")
        if item.logprobs is None and settings.head.require_logprobs and head.uses_logprobs:
            detail = "the answer has no log-probabilities, which the head needs (head.require_logprobs)"
            return Check("head", "skipped", detail=detail)
        loop = asyncio.get_running_loop()
        try:
            if head.embeds:  # it embeds the answer: a few ms, off the loop
                p_good = await loop.run_in_executor(None, head.score_one, item, embedding)
            else:  # scalar features only: tens of microseconds, cheaper than the thread hop
                p_good = head.score_one(item, embedding)
        except Exception as exc:  # an ONNX or input failure: the answer goes out unverified, not lost
            log.warning("the answer head failed: %s: %s", type(exc).__name__, exc)
            return head_check(None, settings.head, f"the answer head failed: {type(exc).__name__}")
        return head_check(p_good, settings.head)

    def _logprobs_seen(self, present: bool, model: str) -> None:
        self.metrics.cascade_logprobs.set(1 if present else 0)
        if present != self._logprobs_present:
            self._logprobs_present = present
            if self.on_logprobs is not None:
                self.on_logprobs(present)
        if not present:
            self.metrics.cascade_logprobs_missing.inc()
            if not self._warned_no_logprobs:
                self._warned_no_logprobs = True
                log.warning(
                    "the small tier (%s) returned no token log-probabilities: the confidence verifier (and "
                    "the head, with head.require_logprobs) is skipped for its answers "
                    "(rightsize_cascade_logprobs_missing_total counts them)",
                    model,
                )


@dataclass(frozen=True)
class Sampled:
    """The consistency verifier's second, sampled answer: its text, or None and why it could not be drawn."""

    text: str | None
    error: str = ""


def _failed(checks: Sequence[Check]) -> bool:
    return any(check.outcome == "fail" for check in checks)
