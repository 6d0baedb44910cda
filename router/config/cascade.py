"""`routing.cascade`: the answer-aware cascade's settings (verifiers, thresholds, answer head, streams)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["route", "cascade"]
MODES: tuple[Mode, ...] = ("route", "cascade")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FormSettings(_Strict):
    """`routing.cascade.form`: the form checks (classifier.answer.form_verdict), each on its own switch."""

    enabled: bool = True
    empty: bool = True
    schema_check: bool = True  # the answer failed the request's JSON Schema (router.structured)
    truncation: bool = True
    # finish_reason `length` with fewer completion tokens than this fails; a longer cut-off answer passes.
    truncated_min_tokens: int = Field(default=256, ge=1)
    refusal: bool = True
    repetition: bool = True
    repetition_max: float = Field(default=0.5, gt=0, le=1)  # share of repeated word 4-grams
    repetition_min_words: int = Field(default=12, ge=5)


class ConfidenceSettings(_Strict):
    """`routing.cascade.confidence`: token log-probabilities requested from the small tier.

    `min_score`: the geometric-mean token probability (exp of the mean logprob, in [0, 1]) below which
    the answer escalates. `max_low_confidence_share`: the share of tokens with top-1 probability below 0.5
    above which it escalates (None: not checked).
    """

    enabled: bool = True
    min_score: float = Field(default=0.5, ge=0, le=1)
    max_low_confidence_share: float | None = Field(default=None, ge=0, le=1)


class ConsistencySettings(_Strict):
    """`routing.cascade.consistency`: self-consistency. A second answer is sampled from the small tier at
    `temperature`, alongside the first (no log-probabilities asked for); their agreement (the mean of "same
    first line" and word overlap, in [0, 1]) below `min_agreement` escalates, and an answer head whose
    features include the sample's reads it. It costs a second small-tier call, so `auto` (the default)
    draws it only where token confidence cannot run: a small tier that returns no log-probabilities
    (Ollama through LiteLLM, or one seen answering without them). `true`: always; `false`: never."""

    enabled: bool | Literal["auto"] = "auto"
    temperature: float = Field(default=0.8, gt=0, le=2)
    min_agreement: float = Field(default=0.5, ge=0, le=1)


class HeadSettings(_Strict):
    """`routing.cascade.head`: the learned answer-quality head (models/verifier). P(good) below
    `threshold` escalates. `path` None: `<models.dir>/verifier` (relative paths follow the config file).
    The head directory is also a registry: `rightsize retrain` promotes into `<path>/current`."""

    enabled: bool = True
    path: Path | None = None
    threshold: float = Field(default=0.5, ge=0, le=1)
    # Without the answer's log-probabilities the shipped head ranks held-out answers worse than random
    # (benchmarks/cascade.py), so by default it is skipped for such answers rather than trusted.
    require_logprobs: bool = True


class CascadeSettings(_Strict):
    """`routing.cascade`: how `mode: cascade` verifies the small tier's answer and when it escalates."""

    # A score at or above this goes straight to the large tier (a clearly hard prompt never waits for the
    # small model). It must be at least the routing threshold: below it, the cascade would send more
    # prompts straight to large than plain routing.
    direct_large: float = Field(default=0.9, ge=0, le=1)
    form: FormSettings = FormSettings()
    confidence: ConfidenceSettings = ConfidenceSettings()
    consistency: ConsistencySettings = ConsistencySettings()
    head: HeadSettings = HeadSettings()
    # buffer: hold the small answer until verified, then stream it (or the large answer instead);
    # off: stream the small answer as it comes, unverified.
    stream: Literal["buffer", "off"] = "buffer"
    # Seconds a large-tier call needs: with less left before the client's deadline, the small answer is
    # returned unverified rather than escalated.
    large_call_s: float = Field(default=2.0, gt=0)
    # With few-shot on: a large answer given after an escalation becomes an approved exemplar of its
    # tenant and task at once (else a candidate under the usual approval rules).
    approve_escalations: bool = False

    @property
    def reads_logprobs(self) -> bool:
        """Whether the small tier is asked for token log-probabilities: the confidence verifier and the
        answer head read them."""
        return self.confidence.enabled or self.head.enabled
