"""The routing policy as a table of cases, plus the threshold's defining property."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.config import RouterConfig
from router.domain import Message, Request, ResponseFormat, Tool
from router.routing.policy import decide
from tests.router.support import TASK_PROMPT

TIERS = {"small": {"model": "ollama_chat/llama3:8b"}, "large": {"model": "openai/gpt-4o"}}
OVERRIDES = [
    {"metadata": {"tenant": "acme"}, "threshold": 0.8},
    {"metadata": {"task": "extraction"}, "tier": "small"},
    {"metadata": {"tenant": "vip", "task": "chat"}, "tier": "large"},
]


def config(**routing: Any) -> RouterConfig:
    return RouterConfig.model_validate({"tiers": TIERS, "routing": routing})


def request(force_tier: str = "", **metadata: str) -> Request:
    messages = (Message("user", TASK_PROMPT),)
    return Request(messages=messages, request_id="r1", metadata=metadata, force_tier=force_tier)


CASES = [
    # score, request, routing, tier, threshold, rule, reason
    (0.49, request(), {"threshold": 0.5}, "small", 0.5, "global", "global threshold 0.5"),
    (0.5, request(), {"threshold": 0.5}, "large", 0.5, "global", "global threshold 0.5"),
    (0.0, request(), {"threshold": 0.0}, "large", 0.0, "global", "global threshold 0"),
    (1.0, request(), {"threshold": 1.0}, "large", 1.0, "global", "global threshold 1"),
    (0.99, request(), {"threshold": 1.0}, "small", 1.0, "global", "global threshold 1"),
    (0.9, request(force_tier="small"), {"threshold": 0.5}, "small", 0.5, "forced", "forced by request"),
    (0.1, request(force_tier="large"), {"threshold": 0.5}, "large", 0.5, "forced", "forced by request"),
    (
        0.7,
        request(tenant="acme"),
        {"overrides": OVERRIDES},
        "small",
        0.8,
        "override[0]",
        "override[0] tenant=acme threshold=0.8",
    ),
    (
        0.85,
        request(tenant="acme"),
        {"overrides": OVERRIDES},
        "large",
        0.8,
        "override[0]",
        "override[0] tenant=acme threshold=0.8",
    ),
    (0.7, request(tenant="other"), {"overrides": OVERRIDES}, "large", 0.5, "global", "global threshold 0.5"),
    (
        0.99,
        request(task="extraction"),
        {"overrides": OVERRIDES},
        "small",
        0.5,
        "override[1]",
        "override[1] task=extraction tier=small",
    ),
    # first match wins: acme's threshold rule comes before the extraction tier rule
    (
        0.7,
        request(tenant="acme", task="extraction"),
        {"overrides": OVERRIDES},
        "small",
        0.8,
        "override[0]",
        "override[0] tenant=acme threshold=0.8",
    ),
    (
        0.9,
        request(tenant="acme", task="extraction"),
        {"overrides": OVERRIDES},
        "large",
        0.8,
        "override[0]",
        "override[0] tenant=acme threshold=0.8",
    ),
    # every pair of a rule must match
    (0.1, request(tenant="vip"), {"overrides": OVERRIDES}, "small", 0.5, "global", "global threshold 0.5"),
    (
        0.1,
        request(tenant="vip", task="chat"),
        {"overrides": OVERRIDES},
        "large",
        0.5,
        "override[2]",
        "override[2] tenant=vip task=chat tier=large",
    ),
    # the request's force beats every override; the reported threshold is still the override's
    (
        0.1,
        request(force_tier="large", tenant="acme"),
        {"overrides": OVERRIDES},
        "large",
        0.8,
        "forced",
        "forced by request",
    ),
]


@pytest.mark.parametrize(("score", "req", "routing", "tier", "threshold", "rule", "reason"), CASES)
def test_decide_table(
    score: float, req: Request, routing: dict[str, Any], tier: str, threshold: float, rule: str, reason: str
) -> None:
    decision = decide(score, req, config(**routing), classifier_version="v7")
    assert (decision.tier, decision.threshold) == (tier, threshold)
    assert (decision.rule, decision.reason) == (rule, reason)
    assert decision.model == TIERS[tier]["model"]
    assert decision.score == score
    assert decision.classifier_version == "v7"


@given(score=st.floats(0, 1), threshold=st.floats(0, 1))
def test_large_exactly_when_score_reaches_threshold(score: float, threshold: float) -> None:
    decision = decide(score, request(), config(threshold=threshold))
    assert (decision.tier == "large") == (score >= threshold)


SHAPE_OVERRIDES = [
    {"metadata": {"task": "extract"}, "response_format": "json_schema", "tier": "small"},
    {"tools": True, "tier": "large"},
    {"response_format": "json_object", "threshold": 0.9},
]


EXTRACT = "override[0] task=extract response_format=json_schema tier=small"


def shaped(response_format: str = "text", tools: bool = False, **metadata: str) -> Request:
    return Request(
        messages=(Message("user", TASK_PROMPT),),
        request_id="r1",
        metadata=metadata,
        response_format=ResponseFormat(type=response_format),
        tools=(Tool("lookup"),) if tools else (),
    )


@pytest.mark.parametrize(
    ("score", "req", "tier", "reason"),
    [
        (0.9, shaped("json_schema", task="extract"), "small", EXTRACT),
        (0.9, shaped("json_schema", tools=True, task="extract"), "small", EXTRACT),
        (0.1, shaped("json_schema", task="chat"), "small", "global threshold 0.5"),
        (0.1, shaped("text", tools=True), "large", "override[1] tools=true tier=large"),
        (0.8, shaped("json_object"), "small", "override[2] response_format=json_object threshold=0.9"),
        (0.8, shaped("text", task="extract"), "large", "global threshold 0.5"),
    ],
)  # fmt: skip
def test_overrides_match_the_requests_shape(score: float, req: Request, tier: str, reason: str) -> None:
    decision = decide(score, req, config(overrides=SHAPE_OVERRIDES))
    assert (decision.tier, decision.reason) == (tier, reason)


def test_an_override_without_a_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a condition"):
        config(overrides=[{"tier": "large"}])
    with pytest.raises(ValueError, match="response_format"):
        config(overrides=[{"response_format": "yaml", "tier": "large"}])


SOCIAL = "social turn (greeting, thanks or farewell; no task to fail at)"


def chat(*turns: tuple[str, str], **fields: Any) -> Request:
    return Request(messages=tuple(Message(role, text) for role, text in turns), request_id="r1", **fields)


@pytest.mark.parametrize(
    ("req", "routing", "tier", "rule", "reason"),
    [
        # the classifier scores "thanks!" near 0.8 (extrapolation): the social rule answers it small
        (chat(("user", "thanks!")), {}, "small", "social", SOCIAL),
        (chat(("user", "Write a parser."), ("assistant", "..."), ("user", "Great, thank you!")), {}, "small",
         "social", SOCIAL),
        # only the last user turn counts: an earlier greeting does not make the task social
        (chat(("user", "hi"), ("assistant", "Hello!"), ("user", TASK_PROMPT)), {}, "large", "global",
         "global threshold 0.5"),
        # an acknowledgement is a request for more of the work, not a social turn
        (chat(("user", "ok, continue")), {}, "large", "global", "global threshold 0.5"),
        (chat(("user", "thanks!")), {"social_turns": "score"}, "large", "global", "global threshold 0.5"),
        # a threshold override yields to the social rule, a fixed tier does not
        (chat(("user", "thanks!"), metadata={"tenant": "acme"}), {"overrides": OVERRIDES}, "small", "social",
         SOCIAL),
        (chat(("user", "thanks!"), metadata={"tenant": "vip", "task": "chat"}), {"overrides": OVERRIDES},
         "large", "override[2]", "override[2] tenant=vip task=chat tier=large"),
        (chat(("user", "thanks!"), force_tier="large"), {}, "large", "forced", "forced by request"),
        # tools or structured output ask for more than a reply
        (chat(("user", "thanks!"), tools=(Tool("lookup"),)), {}, "large", "global", "global threshold 0.5"),
        (chat(("user", "thanks!"), response_format=ResponseFormat(type="json_object")), {}, "large", "global",
         "global threshold 0.5"),
        (chat(("user", "thanks!")), {"mode": "cascade", "cascade": {"direct_large": 0.7}}, "small", "social",
         SOCIAL + "; cascade: small first"),
    ],
)  # fmt: skip
def test_social_turns_go_small_whatever_their_score(
    req: Request, routing: dict[str, Any], tier: str, rule: str, reason: str
) -> None:
    decision = decide(0.8, req, config(**routing))
    assert (decision.tier, decision.rule, decision.reason) == (tier, rule, reason)
    assert decision.threshold == (0.8 if req.metadata.get("tenant") == "acme" else 0.5)
    assert decision.mode == routing.get("mode", "route")
