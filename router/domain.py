"""The service's value types: requests, decisions and completions, independent of gRPC and LiteLLM."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Tier = Literal["small", "large"]
TIERS: tuple[Tier, ...] = ("small", "large")
ROLES = frozenset({"system", "user", "assistant", "tool"})
# `Decision.rule` of a social turn (router.routing.policy): small whatever the threshold, which is what the
# target share, calibrate and simulate count it as (router.routing.thresholds, router.routing.simulation).
SOCIAL_RULE = "social"


@dataclass(frozen=True)
class Message:
    """One chat turn; role is one of ROLES (checked by the pipeline, not here).

    An assistant turn may carry the tools it called (`content` may then be empty); a tool turn names the
    call it answers in `tool_call_id`. `name` is the author's name, on a tool turn the tool's.
    """

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters; None (or an empty stop) leaves the backend's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None  # in [-2, 2]
    frequency_penalty: float | None = None  # in [-2, 2]


@dataclass(frozen=True)
class Request:
    """A Route or Complete call. `force_tier` is "" (let the policy decide), "small" or "large".

    `response_format`, `tools` and `tool_choice` are as the client sent them; the pipeline validates them
    (router.structured.parse_structured). Tool definitions are never part of the scored text.
    """

    messages: tuple[Message, ...]
    request_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    params: GenerationParams = GenerationParams()
    force_tier: str = ""
    response_format: ResponseFormat = field(default_factory=lambda: ResponseFormat())
    tools: tuple[Tool, ...] = ()
    tool_choice: str = ""


@dataclass(frozen=True)
class Decision:
    """Which tier answers and why.

    `score` in [0, 1] (P(small model not good enough)); large when score >= threshold unless a rule
    forces a tier. `rule` is a short label for metrics ("global", "forced", "override[0]"); `reason`
    is the human-readable sentence.
    """

    tier: Tier
    model: str
    score: float
    threshold: float
    rule: str
    reason: str
    classifier_version: str
    classify_ms: float | None = None  # the classifier's latency for this request, set by the pipeline
    state_serial: int = 0  # the live routing state's snapshot it was decided with (router.routing.state)
    # "route": `tier` answers; "cascade": `tier` small answers first and its answer is verified (a large
    # tier in cascade mode means the score reached routing.cascade.direct_large).
    mode: str = "route"


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the backend."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Generation:
    """One backend answer (unary), before the pipeline adds the decision."""

    text: str
    model: str
    usage: Usage
    cost_usd: float
    finish_reason: str
    tool_calls: tuple[ToolCall, ...] = ()
    # Per generated token: (its natural-log probability, the best other token's or None); None when the
    # backend returned no log-probabilities (only asked for in cascade mode).
    logprobs: tuple[tuple[float, float | None], ...] | None = None


NO_VERIFIER = -1.0  # verifier_score when no verifier ran


@dataclass(frozen=True)
class Escalation:
    """The cascade's outcome on one answer. `escalated`: the small answer was judged not good enough and
    the large tier answered. `reason`: the verifier and its value, or why the answer is unverified ("" when
    it passed). `score`: the deciding verifier's P(small answer is good) in [0, 1], NO_VERIFIER when none ran.
    """

    escalated: bool = False
    reason: str = ""
    score: float = NO_VERIFIER


@dataclass(frozen=True)
class CascadeTrace:
    """What the cascade saw of a small answer it verified, for the request log (`rightsize label` confirms
    or refutes the verdict from it). `verifier_inputs` is JSON (features, each check's outcome and value);
    `added_ms` the latency an escalation added after the small answer (None without escalation)."""

    small_answer: str
    small_model: str
    verifier_inputs: str
    added_ms: float | None = None


@dataclass(frozen=True)
class GenerationDelta:
    """One piece of a streamed backend answer; finish_reason, usage, cost and the complete tool calls
    arrive on the last piece, tool-call pieces (`tool_call_deltas`) before it."""

    text: str
    finish_reason: str = ""
    usage: Usage | None = None
    cost_usd: float = 0.0
    tool_call_deltas: tuple[ToolCallDelta, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class Completion:
    """The answer to a Complete call. `model` is the model that answered (differs after a fallback)."""

    request_id: str
    decision: Decision
    text: str
    model: str
    usage: Usage
    cost_usd: float
    finish_reason: str
    fallback: bool = False
    fallback_reason: str = ""
    exemplar_ids: tuple[str, ...] = ()  # few-shot exemplars injected into the small tier's prompt
    tool_calls: tuple[ToolCall, ...] = ()
    schema_valid: bool = False  # a schema (or json_object) was asked for and the answer validates
    answer_error: str = ""  # why the answer failed its check ("" when it passed or nothing was checked)
    escalation: Escalation = Escalation()  # the cascade's verdict (mode cascade)
    cascade: CascadeTrace | None = None  # set when the cascade verified a small answer


@dataclass(frozen=True)
class Chunk:
    """One CompleteStream message: decision etc. on the first, usage/cost/finish_reason on the last."""

    delta: str
    decision: Decision | None = None
    model: str = ""
    request_id: str = ""
    fallback: bool = False
    fallback_reason: str = ""
    usage: Usage | None = None
    cost_usd: float = 0.0
    finish_reason: str = ""
    exemplar_ids: tuple[str, ...] = ()  # on the first chunk
    tool_call_deltas: tuple[ToolCallDelta, ...] = ()  # any chunk but the last
    tool_calls: tuple[ToolCall, ...] = ()  # on the last chunk
    schema_valid: bool = False  # on the last chunk
    answer_error: str = ""  # on the last chunk
    escalation: Escalation = Escalation()  # on the last chunk
    cascade: CascadeTrace | None = None  # on the last chunk, when the cascade verified a small answer


Rating = Literal["GOOD", "BAD"]


@dataclass(frozen=True)
class Feedback:
    """A client's rating of an earlier answer. `score` is an optional graded rating in [0, 1]."""

    request_id: str
    rating: Rating
    score: float | None = None
    comment: str = ""


# --- Structured output and tools (issue 16); validated by router.structured.

ResponseFormatType = Literal["text", "json_object", "json_schema"]
RESPONSE_FORMAT_TYPES: tuple[ResponseFormatType, ...] = ("text", "json_object", "json_schema")


@dataclass(frozen=True)
class ResponseFormat:
    """The answer's requested shape as the client sent it (schema as JSON text; see router.structured)."""

    type: str = "text"
    json_schema: str = ""
    schema_name: str = ""
    strict: bool = False


@dataclass(frozen=True)
class Tool:
    """A function the model may call; `parameters_json` is a JSON Schema object as JSON text ("" = none)."""

    name: str
    description: str = ""
    parameters_json: str = ""


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool made by the model; `arguments_json` is JSON text (an object)."""

    id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A streamed piece of the tool call at `index`: id and name on its first piece, then argument text."""

    index: int
    id: str = ""
    name: str = ""
    arguments_delta: str = ""
