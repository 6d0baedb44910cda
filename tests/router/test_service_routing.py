"""Route, Complete and CompleteStream through the real server, classifier and LiteLLM to the stand-ins."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from tests.router.conftest import Running, StartServer
from tests.router.support import (
    HARD_PROMPT,
    JSON_PROMPT,
    LARGE_REPLY,
    SMALL_REPLY,
    Backends,
    KeyedScorer,
    user,
)

MakeConfig = Callable[..., RouterConfig]


async def test_route_decides_with_the_real_classifier(router: Running, scorer: Any) -> None:
    response = await router.stub.Route(pb.RouteRequest(messages=user(JSON_PROMPT)))
    decision = response.decision
    assert 0.0 <= decision.score <= 1.0
    assert decision.tier == ("large" if decision.score >= 0.5 else "small")
    assert decision.model == {"small": "ollama_chat/llama3:8b", "large": "openai/gpt-4o"}[decision.tier]
    assert decision.threshold == 0.5 and decision.reason == "global threshold 0.5"
    assert decision.classifier_version == scorer.version
    assert decision.score == pytest.approx(float(scorer.score([JSON_PROMPT])[0]), abs=1e-6)


async def test_request_id_is_generated_when_empty_and_echoed_otherwise(router: Running) -> None:
    generated = await router.stub.Route(pb.RouteRequest(messages=user("hi")))
    again = await router.stub.Route(pb.RouteRequest(messages=user("hi")))
    assert re.fullmatch(r"[0-9a-f]{32}", generated.request_id)
    assert generated.request_id != again.request_id
    given = await router.stub.Route(pb.RouteRequest(messages=user("hi"), request_id="client-7"))
    assert given.request_id == "client-7"


async def test_a_design_prompt_outscores_a_json_prompt_and_a_threshold_between_splits_them(
    start_server: StartServer, make_config: MakeConfig, scorer: Any
) -> None:
    easy, hard = (float(score) for score in scorer.score([JSON_PROMPT, HARD_PROMPT]))
    assert hard > easy
    server = await start_server(make_config(threshold=(easy + hard) / 2), wait_completion=False)
    tiers = [
        (await server.stub.Route(pb.RouteRequest(messages=user(text)))).decision.tier
        for text in (JSON_PROMPT, HARD_PROMPT)
    ]
    assert tiers == ["small", "large"]


async def test_thanks_is_answered_small_although_the_real_classifier_scores_it_high(
    router: Running, scorer: Any, backends: Backends
) -> None:
    assert float(scorer.score(["thanks!"])[0]) >= 0.5  # extrapolation: no training prompt is this short
    decision = (await router.stub.Route(pb.RouteRequest(messages=user("thanks!")))).decision
    assert decision.tier == "small" and decision.reason.startswith("social turn")
    assert decision.score >= decision.threshold == 0.5  # the score alone would have gone large
    completion = await router.stub.Complete(pb.CompleteRequest(messages=user("thanks!")))
    assert completion.decision.tier == "small" and completion.text == SMALL_REPLY


async def test_continue_goes_where_the_task_it_continues_went(router: Running, scorer: Any) -> None:
    """ "continue" alone scores low (the real classifier: small); after a hard task it is that task's."""
    assert float(scorer.score(["continue"])[0]) < 0.5 <= float(scorer.score([HARD_PROMPT])[0])
    task = (await router.stub.Route(pb.RouteRequest(messages=user(HARD_PROMPT)))).decision
    messages = [
        *user(HARD_PROMPT),
        pb.Message(role="assistant", content="Here is the first part of the design..."),
        pb.Message(role="user", content="continue"),
    ]
    decision = (await router.stub.Route(pb.RouteRequest(messages=messages))).decision
    assert (decision.tier, decision.score) == ("large", pytest.approx(task.score))


@pytest.mark.parametrize(("score", "tier"), [(0.29, "small"), (0.3, "large"), (0.31, "large")])
async def test_tier_follows_the_threshold_at_its_edge(
    start_server: StartServer, make_config: MakeConfig, score: float, tier: str
) -> None:
    server = await start_server(
        make_config(threshold=0.3), with_scorer=KeyedScorer({"q": score}), wait_completion=False
    )
    decision = (await server.stub.Route(pb.RouteRequest(messages=user("q")))).decision
    assert (decision.tier, decision.score) == (tier, pytest.approx(score))


async def test_complete_on_the_large_tier_reports_usage_and_configured_cost(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    server = await start_server(make_config(threshold=0.0))  # every score >= 0: always large
    messages = [pb.Message(role="system", content="be brief"), *user("two plus two")]
    response = await server.stub.Complete(pb.CompleteRequest(messages=messages))
    assert response.text == LARGE_REPLY
    assert (response.decision.tier, response.model) == ("large", "openai/gpt-4o")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, len(LARGE_REPLY.split()))
    assert response.cost_usd == pytest.approx(5 * 1e-6 + len(LARGE_REPLY.split()) * 2e-6)
    assert (response.fallback, response.fallback_reason, response.finish_reason) == (False, "", "stop")
    assert re.fullmatch(r"[0-9a-f]{32}", response.request_id)
    assert len(backends.large.requests) == 1 and backends.small.requests == []


async def test_complete_on_the_small_tier_is_free_and_forwards_params(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    server = await start_server(make_config(threshold=1.0), with_scorer=KeyedScorer(default=0.1))
    params = pb.GenerationParams(max_tokens=16, temperature=0.0, stop=["END"])
    response = await server.stub.Complete(
        pb.CompleteRequest(messages=user("hello there"), params=params, request_id="r-1")
    )
    assert (response.text, response.model) == (SMALL_REPLY, "ollama_chat/llama3:8b")
    assert response.decision.tier == "small"
    assert response.cost_usd == 0.0 and response.usage.prompt_tokens == 2
    assert response.request_id == "r-1"
    options = backends.small.requests[0]["body"]["options"]
    assert options == {"num_predict": 16, "temperature": 0.0, "stop": ["END"]}
    assert backends.large.requests == []


@pytest.mark.parametrize(("force", "score", "tier"), [("large", 0.1, "large"), ("small", 0.9, "small")])
async def test_force_tier_overrides_the_score(
    start_server: StartServer, make_config: MakeConfig, force: str, score: float, tier: str
) -> None:
    server = await start_server(make_config(threshold=0.5), with_scorer=KeyedScorer(default=score))
    response = await server.stub.Complete(pb.CompleteRequest(messages=user("x"), force_tier=force))
    assert (response.decision.tier, response.decision.reason) == (tier, "forced by request")
    assert response.text == (LARGE_REPLY if tier == "large" else SMALL_REPLY)
    assert response.decision.score == pytest.approx(score)


async def test_override_rule_applies_to_matching_metadata_only(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    config = make_config(threshold=0.5, overrides=[{"metadata": {"tenant": "acme"}, "threshold": 0.8}])
    server = await start_server(config, with_scorer=KeyedScorer(default=0.7), wait_completion=False)
    acme = await server.stub.Route(pb.RouteRequest(messages=user("x"), metadata={"tenant": "acme"}))
    other = await server.stub.Route(pb.RouteRequest(messages=user("x"), metadata={"tenant": "zeta"}))
    assert (acme.decision.tier, acme.decision.reason) == ("small", "override[0] tenant=acme threshold=0.8")
    assert (other.decision.tier, other.decision.reason) == ("large", "global threshold 0.5")


@pytest.mark.parametrize("tier", ["small", "large"])
async def test_complete_stream_sends_decision_first_and_usage_last(
    start_server: StartServer, make_config: MakeConfig, tier: str
) -> None:
    scorer = KeyedScorer(default=0.1 if tier == "small" else 0.9)
    server = await start_server(make_config(threshold=0.5), with_scorer=scorer)
    request = pb.CompleteRequest(messages=user("stream it"))
    chunks = [chunk async for chunk in server.stub.CompleteStream(request)]
    reply = SMALL_REPLY if tier == "small" else LARGE_REPLY
    assert "".join(chunk.delta for chunk in chunks) == reply
    assert len(chunks) >= len(reply.split())  # streamed piece by piece, not buffered into one message
    first, last = chunks[0], chunks[-1]
    assert first.HasField("decision") and first.decision.tier == tier
    assert first.model == first.decision.model and re.fullmatch(r"[0-9a-f]{32}", first.request_id)
    assert not any(chunk.HasField("decision") for chunk in chunks[1:])
    assert last.HasField("usage") and last.finish_reason == "stop"
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (2, len(reply.split()))
    expected_cost = 0.0 if tier == "small" else 2 * 1e-6 + len(reply.split()) * 2e-6
    assert last.cost_usd == pytest.approx(expected_cost)
    assert not any(chunk.HasField("usage") for chunk in chunks[:-1])
    assert not any(chunk.fallback for chunk in chunks)


async def test_concurrent_routes_all_succeed(router: Running) -> None:
    texts = [f"question number {i}: what is {i} squared?" for i in range(24)]
    responses = await asyncio.gather(*(router.stub.Route(pb.RouteRequest(messages=user(t))) for t in texts))
    assert len({response.request_id for response in responses}) == 24
    assert all(response.decision.tier in ("small", "large") for response in responses)
