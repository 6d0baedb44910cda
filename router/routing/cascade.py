"""The cascade's verdict on a small-tier answer: each verifier's check, and whether to escalate. Pure.

Verifiers run cheapest first and the first that fails decides (router.pipeline runs them in that order
and stops there): `form` (empty, schema, cut off early, refusal, repetition), `confidence` (token
log-probabilities), `consistency` (a second, sampled answer agrees with it; opt-in), `head` (the learned
answer-quality head's P(good)). A verifier that cannot run (the
backend returned no log-probabilities, the head failed to load or raised) is `skipped` or `error`: the
answer is then unverified as far as that verifier goes, which `escalation_reason` says.

classifier.answer is imported on first use: a server that never cascades does not pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from router.config.cascade import ConfidenceSettings, ConsistencySettings, FormSettings, HeadSettings
from router.domain import NO_VERIFIER, Escalation

if TYPE_CHECKING:
    from classifier.answer import ConfidenceFeatures, TokenLogprob

Verifier = Literal["form", "confidence", "consistency", "head"]
VERIFIERS: tuple[Verifier, ...] = ("form", "confidence", "consistency", "head")
Outcome = Literal["pass", "fail", "skipped", "error"]
OUTCOMES: tuple[Outcome, ...] = ("pass", "fail", "skipped", "error")


@dataclass(frozen=True)
class Check:
    """One verifier's outcome. `value`: what it measured (form: the failed check's value; confidence: the
    score in [0, 1]; consistency: the two answers' agreement in [0, 1]; head: P(good) in [0, 1]);
    `detail`: the failed check's name or why it could not run."""

    verifier: Verifier
    outcome: Outcome
    value: float | None = None
    detail: str = ""

    @property
    def p_good(self) -> float | None:
        """This verifier's P(the small answer is good) in [0, 1], when it has one."""
        if self.outcome not in ("pass", "fail"):
            return None
        if self.verifier == "form":
            return 1.0 if self.outcome == "pass" else 0.0
        return self.value


def form_check(
    answer: str,
    settings: FormSettings,
    *,
    finish_reason: str | None = None,
    completion_tokens: int | None = None,
    schema_valid: bool | None = None,
) -> Check:
    """The form checks on `answer`; `schema_valid` None when no schema was asked for."""
    from classifier.answer import FormConfig, form_verdict

    config = FormConfig(
        empty=settings.empty,
        truncation=settings.truncation,
        truncated_min_tokens=settings.truncated_min_tokens,
        refusal=settings.refusal,
        repetition=settings.repetition,
        repetition_max=settings.repetition_max,
        repetition_min_words=settings.repetition_min_words,
        schema=settings.schema_check,
    )
    verdict = form_verdict(
        answer,
        finish_reason=finish_reason,
        completion_tokens=completion_tokens,
        schema_valid=schema_valid,
        config=config,
    )
    if verdict.ok:
        return Check("form", "pass")
    return Check("form", "fail", verdict.value, verdict.reason)


def token_logprobs(logprobs: Sequence[tuple[float, float | None]] | None) -> tuple[TokenLogprob, ...] | None:
    """A Generation's (logprob, second-best) pairs as classifier tokens; None when there are none."""
    if not logprobs:
        return None
    from classifier.answer import TokenLogprob

    return tuple(TokenLogprob(logprob, second) for logprob, second in logprobs)


def confidence_check(features: ConfidenceFeatures | None, settings: ConfidenceSettings) -> Check:
    """Escalate on low token confidence; `skipped` when the backend returned no log-probabilities."""
    if features is None:
        return Check("confidence", "skipped", detail="the small tier returned no log-probabilities")
    score = round(features.score, 4)
    if score < settings.min_score:
        return Check("confidence", "fail", score, f"score {score:g} < {settings.min_score:g}")
    limit = settings.max_low_confidence_share
    share = features.low_confidence_share
    if limit is not None and share > limit:
        detail = f"low-confidence token share {share:.3g} > {limit:g}"
        return Check("confidence", "fail", score, detail)
    return Check("confidence", "pass", score)


def consistency_check(agreement: float | None, settings: ConsistencySettings, error: str = "") -> Check:
    """Escalate when the sampled answer agrees with the answer less than `min_agreement`; `skipped` when
    no sample could be drawn (`error` says why)."""
    if agreement is None:
        return Check("consistency", "skipped", detail=error or "no second answer was sampled")
    agreement = round(float(agreement), 4)
    if agreement < settings.min_agreement:
        detail = f"agreement {agreement:g} < {settings.min_agreement:g}"
        return Check("consistency", "fail", agreement, detail)
    return Check("consistency", "pass", agreement)


def head_check(p_good: float | None, settings: HeadSettings, error: str = "") -> Check:
    """Escalate when the head's P(good) is below its threshold; `error` when it could not run."""
    if p_good is None:
        return Check("head", "error", detail=error or "the answer head is not loaded")
    p_good = round(float(p_good), 4)
    if p_good < settings.threshold:
        return Check("head", "fail", p_good, f"P(good) {p_good:g} < {settings.threshold:g}")
    return Check("head", "pass", p_good)


def should_escalate(checks: Sequence[Check]) -> bool:
    """True when a verifier failed the answer."""
    return any(check.outcome == "fail" for check in checks)


def escalation(checks: Sequence[Check], *, escalated: bool, unverified: str = "") -> Escalation:
    """The contract's three fields from the checks that ran.

    `escalated`: the large tier answered after a failed check. `unverified`: why a failed answer could not
    be escalated (no time left, the large call failed), or "". The score is the P(good) of the last verifier
    that produced one (the failing one when one failed), NO_VERIFIER when none did.
    """
    scores = [check.p_good for check in checks if check.p_good is not None]
    score = scores[-1] if scores else NO_VERIFIER
    failed = next((check for check in checks if check.outcome == "fail"), None)
    missing = [
        f"{check.verifier} {check.outcome}: {check.detail}"
        for check in checks
        if check.outcome in ("skipped", "error")
    ]
    if failed is not None:
        reason = f"{failed.verifier}: {failed.detail}" if failed.verifier != "form" else _form_reason(failed)
        if not escalated:
            reason = f"unverified: {unverified} (verdict was {reason})"
        return Escalation(escalated, reason, score)
    if unverified:
        missing.insert(0, unverified)
    reason = f"unverified: {'; '.join(missing)}" if missing else ""
    return Escalation(False, reason, score)


def _form_reason(check: Check) -> str:
    value = "" if check.value is None else f" {check.value:g}"
    return f"{check.detail}{value}"


def check_labels(checks: Sequence[Check]) -> dict[str, str]:
    """verifier -> outcome, for the request log and metrics."""
    return {check.verifier: check.outcome for check in checks}
