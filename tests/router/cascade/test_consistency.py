"""The consistency verifier through the real server: a second small-tier answer, sampled alongside the
first, escalates when the two disagree; `auto` draws it only where the small tier gives no log-probabilities.
LiteLLM calls stand-in tiers over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.rpc.server import LOGPROBS_HEALTH_SERVICE
from tests.router.cascade.helpers import logged
from tests.router.conftest import Running, StartServer
from tests.router.standins import Kind, StandIn
from tests.router.support import MODEL_DIR, KeyedScorer, log_section, user
from tests.router.waiting import NOT_SERVING, wait_health

STEADY = "What is the capital of France?"  # both answers agree
SHAKY = "What is 17 * 23?"  # the sampled answer says something else
LARGE_ANSWER = "the large tier's correct answer"
MakeConfig = Callable[..., RouterConfig]


def sampled(body: dict[str, Any]) -> bool:
    """Whether this request is the consistency sample (temperature 0.8: OpenAI top level, Ollama options)."""
    temperature = body.get("temperature", (body.get("options") or {}).get("temperature"))
    return temperature == 0.8


def reply(body: dict[str, Any]) -> str:
    last = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    if SHAKY in last:
        return "17 * 23 is 412." if sampled(body) else "17 * 23 is 391."
    return "Paris is the capital of France."


@pytest.fixture
def large() -> Iterator[StandIn]:
    tier = StandIn("openai", reply=LARGE_ANSWER)
    yield tier
    tier.kill()


@pytest.fixture
def small_of(large: StandIn, tmp_path: Path) -> Iterator[Callable[..., tuple[StandIn, RouterConfig]]]:
    made: list[StandIn] = []

    def make(kind: Kind, **cascade: Any) -> tuple[StandIn, RouterConfig]:
        small = StandIn(kind)
        small.answer = reply
        made.append(small)
        model = "ollama_chat/smol" if kind == "ollama" else "hosted_vllm/smol"
        config = RouterConfig.model_validate(
            {
                "server": {"address": "127.0.0.1:0", "metrics_port": 0, "grace_period_s": 2},
                "tiers": {
                    "small": {"model": model, "api_base": small.url, "timeout": 10},
                    "large": {"model": "openai/gpt-4o", "api_base": large.url, "api_key": "sk-test"},
                },
                "routing": {"threshold": 0.5, "mode": "cascade", "cascade": cascade},
                "models": {"dir": str(MODEL_DIR.parent), "active": MODEL_DIR.name},
                **log_section(tmp_path),
            }
        )
        return small, config

    yield make
    for small in made:
        small.kill()


async def serve(start_server: StartServer, config: RouterConfig) -> Running:
    return await start_server(config, with_scorer=KeyedScorer({}, default=0.3))


def ask(prompt: str, request_id: str) -> pb.CompleteRequest:
    return pb.CompleteRequest(messages=user(prompt), request_id=request_id)


async def test_a_disagreeing_sample_escalates_and_an_agreeing_one_passes(
    start_server: StartServer, small_of: Callable[..., tuple[StandIn, RouterConfig]], large: StandIn
) -> None:
    small, config = small_of("openai", consistency={"enabled": True}, head={"enabled": False})
    running = await serve(start_server, config)
    steady = await running.stub.Complete(ask(STEADY, "steady"))
    assert steady.text == "Paris is the capital of France." and not steady.escalated
    assert steady.escalation_reason == "" and steady.verifier_score == 1.0  # the agreement
    bodies = [request["body"] for request in small.requests]
    assert len(bodies) == 2 and sorted(sampled(body) for body in bodies) == [False, True]
    sample = next(body for body in bodies if sampled(body))
    assert "logprobs" not in sample  # the sample needs its text only
    assert sample["messages"] == next(body for body in bodies if not sampled(body))["messages"]

    shaky = await running.stub.Complete(ask(SHAKY, "shaky"))
    assert shaky.escalated and shaky.text == LARGE_ANSWER
    # "same first line" 0, word overlap 3/5 = 0.6: agreement 0.3 < 0.5
    assert shaky.escalation_reason == "consistency: agreement 0.3 < 0.5"
    assert shaky.verifier_score == pytest.approx(0.3)
    inputs = json.loads(logged(running, "shaky").verifier_inputs or "{}")
    assert inputs["sample"] == "17 * 23 is 412."  # retraining reads it back from the log
    assert inputs["checks"]["consistency"] == ["fail", 0.3]
    assert inputs["checks"]["confidence"][0] == "pass"  # cheaper, ran first
    assert len(large.requests) == 1


async def test_auto_samples_only_where_there_are_no_logprobs(
    start_server: StartServer, small_of: Callable[..., tuple[StandIn, RouterConfig]]
) -> None:
    # OpenAI-compatible with log-probabilities: the confidence verifier runs, no second call.
    small, config = small_of("openai", head={"enabled": False})
    running = await serve(start_server, config)
    answer = await running.stub.Complete(ask(SHAKY, "vllm"))
    assert not answer.escalated and len(small.requests) == 1
    assert "consistency" not in json.loads(logged(running, "vllm").verifier_inputs or "{}")["checks"]

    # Ollama through LiteLLM returns none: auto draws the sample instead, and the head (which needs
    # them) is skipped, not trusted.
    small, config = small_of("ollama")
    running = await serve(start_server, config)
    steady = await running.stub.Complete(ask(STEADY, "ollama-steady"))
    assert not steady.escalated and len(small.requests) == 2
    assert steady.escalation_reason == (
        "unverified: confidence skipped: the small tier returned no log-probabilities; head skipped: "
        "the answer has no log-probabilities, which the head needs (head.require_logprobs)"
    )
    shaky = await running.stub.Complete(ask(SHAKY, "ollama-shaky"))
    assert shaky.escalated and shaky.escalation_reason == "consistency: agreement 0.3 < 0.5"


async def test_a_tier_that_drops_logprobs_is_noticed_with_confidence_off(
    start_server: StartServer, small_of: Callable[..., tuple[StandIn, RouterConfig]]
) -> None:
    # vLLM is known to return log-probabilities, so `auto` starts without a sample; this one drops them.
    # The head asked for them (confidence is off): their absence still reaches health and `auto`.
    small, config = small_of("openai", confidence={"enabled": False})
    small.logprob = None
    running = await serve(start_server, config)
    first = await running.stub.Complete(ask(SHAKY, "silent-1"))
    assert len(small.requests) == 1 and "logprobs" in small.requests[0]["body"]
    assert not first.escalated and first.escalation_reason == (
        "unverified: head skipped: the answer has no log-probabilities, which the head needs "
        "(head.require_logprobs)"
    )
    await wait_health(running.channel, LOGPROBS_HEALTH_SERVICE, NOT_SERVING)
    second = await running.stub.Complete(ask(SHAKY, "silent-2"))
    assert len(small.requests) == 3  # the answer and, from now on, its sample
    assert second.escalated and second.escalation_reason == "consistency: agreement 0.3 < 0.5"


async def test_a_failed_sample_leaves_the_answer_to_the_other_verifiers(
    start_server: StartServer, small_of: Callable[..., tuple[StandIn, RouterConfig]]
) -> None:
    small, config = small_of("openai", consistency={"enabled": True}, head={"enabled": False})

    def broken(body: dict[str, Any]) -> str:
        if sampled(body):
            raise ConnectionResetError("the stand-in drops the sample")
        return reply(body)

    small.answer = broken
    running = await serve(start_server, config)
    response = await running.stub.Complete(ask(STEADY, "no-sample"))
    assert response.text == "Paris is the capital of France." and not response.escalated
    assert response.escalation_reason.startswith("unverified: consistency skipped: the sample call failed")
    assert response.verifier_score == pytest.approx(0.9512, abs=1e-3)  # confidence ran and decided


async def test_a_buffered_stream_verifies_with_the_sample_too(
    start_server: StartServer, small_of: Callable[..., tuple[StandIn, RouterConfig]]
) -> None:
    small, config = small_of("openai", consistency={"enabled": True}, head={"enabled": False})
    running = await serve(start_server, config)
    chunks = [c async for c in running.stub.CompleteStream(ask(SHAKY, "stream-shaky"))]
    assert "".join(c.delta for c in chunks) == LARGE_ANSWER
    assert chunks[-1].escalated and chunks[-1].escalation_reason == "consistency: agreement 0.3 < 0.5"
    assert len(small.requests) == 2


async def test_the_head_may_score_answers_without_logprobs_when_told_to(
    start_server: StartServer, small_of: Callable[..., tuple[StandIn, RouterConfig]]
) -> None:
    small, config = small_of("ollama", consistency={"enabled": False}, head={"require_logprobs": False})
    running = await serve(start_server, config)
    response = await running.stub.Complete(ask(STEADY, "ollama-head"))
    assert len(small.requests) == 1  # no sample: consistency is off
    checks = json.loads(logged(running, "ollama-head").verifier_inputs or "{}")["checks"]
    assert checks["head"][0] in ("pass", "fail") and 0 <= checks["head"][1] <= 1
    assert response.verifier_score == checks["head"][1]
