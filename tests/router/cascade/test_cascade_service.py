"""The answer-aware cascade through the real server: LiteLLM calls stand-in tiers whose small tier returns
token log-probabilities, right answers confidently and wrong ones not."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig, load_config
from router.errors import ConfigError
from router.rpc.server import LOGPROBS_HEALTH_SERVICE, load_scorer
from tests.router.cascade.helpers import logged
from tests.router.conftest import Running, StartServer
from tests.router.standins import StandIn
from tests.router.support import MODEL_DIR, KeyedScorer, log_section, user
from tests.router.waiting import NOT_SERVING, SERVING, health, wait_health

RIGHT = "What is 2 + 2?"
WRONG = "What is 17 * 23?"
REFUSED = "Tell me a secret."
HARD = "Prove the Riemann hypothesis."
RIGHT_ANSWER = "2 + 2 is 4."
WRONG_ANSWER = "17 * 23 is 381."
LARGE_ANSWER = "the large tier's correct answer"
SCORES = {RIGHT: 0.3, WRONG: 0.3, REFUSED: 0.3, HARD: 0.95}
MakeConfig = Callable[..., RouterConfig]


@pytest.fixture
def tiers() -> Iterator[tuple[StandIn, StandIn]]:
    """An OpenAI-compatible small tier (as vLLM and llama.cpp are) and a large one that knows the answers."""
    small, large = StandIn("openai", reply=RIGHT_ANSWER), StandIn("openai", reply=LARGE_ANSWER)
    small.answers = {
        RIGHT: (RIGHT_ANSWER, -0.05),  # confidence exp(-0.05) = 0.951
        WRONG: (WRONG_ANSWER, -1.5),  # confidence exp(-1.5) = 0.223
        REFUSED: ("I'm sorry, but I can't help with that.", -0.05),
    }
    yield small, large
    small.kill()
    large.kill()


@pytest.fixture
def cascade_config(tiers: tuple[StandIn, StandIn], tmp_path: Path) -> MakeConfig:
    small, large = tiers

    def make(
        *, head: dict[str, Any] | None = None, scoring: dict[str, Any] | None = None, **cascade: Any
    ) -> RouterConfig:
        routing = {
            "threshold": 0.5,
            "mode": cascade.pop("mode", "cascade"),
            "overrides": cascade.pop("overrides", []),
            "cascade": {"head": head or {"enabled": False}, **cascade},
        }
        return RouterConfig.model_validate(
            {
                "server": {"address": "127.0.0.1:0", "metrics_port": 0, "grace_period_s": 2},
                "tiers": {
                    "small": {"model": "hosted_vllm/smol", "api_base": small.url, "timeout": 10},
                    "large": {"model": "openai/gpt-4o", "api_base": large.url, "api_key": "sk-test"},
                },
                "routing": routing,
                "models": {"dir": str(MODEL_DIR.parent), "active": MODEL_DIR.name},
                "scoring": scoring or {},
                **log_section(tmp_path),
            }
        )

    return make


async def serve(start_server: StartServer, config: RouterConfig) -> Running:
    return await start_server(config, with_scorer=KeyedScorer(SCORES, default=0.3))


def ask(prompt: str, **fields: Any) -> pb.CompleteRequest:
    return pb.CompleteRequest(messages=user(prompt), **fields)


def metric(running: Running, name: str) -> float:
    text = urllib.request.urlopen(running.metrics_url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_a_confident_right_answer_stays_small(
    start_server: StartServer, cascade_config: MakeConfig, tiers: tuple[StandIn, StandIn]
) -> None:
    running = await serve(start_server, cascade_config())
    response = await running.stub.Complete(ask(RIGHT, request_id="right-1"))
    assert response.text == RIGHT_ANSWER and response.model == "hosted_vllm/smol"
    assert response.decision.mode == "cascade" and response.decision.tier == "small"
    assert not response.escalated and response.escalation_reason == ""
    assert response.verifier_score == pytest.approx(0.9512, abs=1e-3)  # the confidence verifier's score
    sent = tiers[0].requests[-1]["body"]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert not tiers[1].requests  # the large tier was never asked
    record = logged(running, "right-1")
    assert record.mode == "cascade" and record.escalated is False
    assert record.small_response == RIGHT_ANSWER and record.verifier_score == response.verifier_score
    assert json.loads(record.verifier_inputs or "{}")["checks"]["confidence"][0] == "pass"


async def test_an_unsure_answer_escalates_and_the_log_keeps_both(
    start_server: StartServer, cascade_config: MakeConfig, tiers: tuple[StandIn, StandIn]
) -> None:
    running = await serve(start_server, cascade_config())
    response = await running.stub.Complete(ask(WRONG, request_id="wrong-1"))
    assert response.escalated and response.text == LARGE_ANSWER and response.model == "openai/gpt-4o"
    assert response.escalation_reason == "confidence: score 0.2231 < 0.5"
    assert response.verifier_score == pytest.approx(0.2231, abs=1e-4)
    assert response.decision.tier == "small" and response.decision.mode == "cascade"
    assert "logprobs" not in tiers[1].requests[-1]["body"]  # only the small tier is asked for them
    record = logged(running, "wrong-1")
    assert record.escalated is True and record.escalation_reason == response.escalation_reason
    assert (record.small_response, record.response) == (WRONG_ANSWER, LARGE_ANSWER)  # both answers
    assert record.escalation_ms is not None and record.escalation_ms > 0
    inputs = json.loads(record.verifier_inputs or "{}")
    assert inputs["mean_logprob"] == pytest.approx(-1.5) and inputs["logprob_tokens"] == 5
    assert metric(running, 'rightsize_cascade_verdicts_total{outcome="fail",verifier="confidence"}') == 1
    assert metric(running, "rightsize_cascade_escalation_added_seconds_count") == 1


async def test_a_refusal_fails_the_form_check_before_confidence(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    running = await serve(start_server, cascade_config())
    response = await running.stub.Complete(ask(REFUSED))
    assert response.escalated and response.escalation_reason == "form:refusal 1"
    assert response.verifier_score == 0.0
    assert metric(running, 'rightsize_cascade_verdicts_total{outcome="fail",verifier="form"}') == 1
    assert metric(running, 'rightsize_cascade_verdicts_total{outcome="pass",verifier="confidence"}') == 0


async def test_a_clearly_hard_prompt_goes_straight_to_large(
    start_server: StartServer, cascade_config: MakeConfig, tiers: tuple[StandIn, StandIn]
) -> None:
    running = await serve(start_server, cascade_config(direct_large=0.9))
    response = await running.stub.Complete(ask(HARD))
    assert response.decision.tier == "large" and response.decision.mode == "cascade"
    assert response.text == LARGE_ANSWER and not response.escalated and response.verifier_score == -1
    assert not tiers[0].requests  # the small model's latency was never paid


async def test_route_mode_and_a_per_tenant_cascade_override(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    overrides = [{"metadata": {"tenant": "acme"}, "mode": "cascade"}]
    running = await serve(start_server, cascade_config(mode="route", overrides=overrides))
    plain = await running.stub.Complete(ask(WRONG))
    assert plain.decision.mode == "route" and plain.text == WRONG_ANSWER
    assert not plain.escalated and plain.verifier_score == -1
    acme = await running.stub.Complete(ask(WRONG, metadata={"tenant": "acme"}))
    assert acme.decision.mode == "cascade" and acme.escalated and acme.text == LARGE_ANSWER
    forced = await running.stub.Complete(ask(WRONG, metadata={"tenant": "acme"}, force_tier="small"))
    assert forced.decision.mode == "route" and not forced.escalated


async def test_no_time_for_a_large_call_returns_the_small_answer_unverified(
    start_server: StartServer, cascade_config: MakeConfig, tiers: tuple[StandIn, StandIn]
) -> None:
    running = await serve(start_server, cascade_config(large_call_s=30))
    response = await running.stub.Complete(ask(WRONG), timeout=5)
    assert response.text == WRONG_ANSWER and not response.escalated
    assert response.escalation_reason.startswith("unverified: no time left for a large-tier call")
    assert "verdict was confidence: score 0.2231 < 0.5" in response.escalation_reason
    assert not tiers[1].requests


async def test_a_failed_escalation_keeps_the_small_answer(
    start_server: StartServer, cascade_config: MakeConfig, tiers: tuple[StandIn, StandIn]
) -> None:
    tiers[1].status = 500
    running = await serve(start_server, cascade_config())
    response = await running.stub.Complete(ask(WRONG))
    assert response.text == WRONG_ANSWER and not response.escalated
    assert response.escalation_reason.startswith("unverified: the large tier failed (server)")


async def test_no_logprobs_skips_the_confidence_verifier_and_says_so(
    start_server: StartServer, cascade_config: MakeConfig, tiers: tuple[StandIn, StandIn]
) -> None:
    tiers[0].answers = {}
    tiers[0].logprob = None
    running = await serve(start_server, cascade_config())
    assert await health(running.channel, LOGPROBS_HEALTH_SERVICE) == SERVING  # none missing yet
    response = await running.stub.Complete(ask(RIGHT))
    assert response.text == RIGHT_ANSWER and not response.escalated and response.verifier_score == 1.0
    assert response.escalation_reason == (
        "unverified: confidence skipped: the small tier returned no log-probabilities"
    )
    assert metric(running, "rightsize_cascade_logprobs_missing_total") == 1
    assert metric(running, "rightsize_cascade_logprobs_available") == 0
    await wait_health(running.channel, LOGPROBS_HEALTH_SERVICE, NOT_SERVING)
    tiers[0].logprob = -0.05  # the backend returns them again: health follows the next answer
    assert not (await running.stub.Complete(ask(RIGHT))).escalation_reason
    await wait_health(running.channel, LOGPROBS_HEALTH_SERVICE, SERVING)
    assert metric(running, "rightsize_cascade_logprobs_available") == 1


async def test_a_head_that_cannot_load_leaves_answers_unverified(
    start_server: StartServer, cascade_config: MakeConfig, tmp_path: Path
) -> None:
    config = cascade_config(head={"path": str(tmp_path / "no-such-head")})
    running = await serve(start_server, config)
    response = await running.stub.Complete(ask(RIGHT))
    assert response.text == RIGHT_ANSWER and not response.escalated
    assert response.escalation_reason.startswith("unverified: head error: the answer head did not load")
    assert response.verifier_score == pytest.approx(0.9512, abs=1e-3)  # confidence still ran
    assert metric(running, 'rightsize_cascade_verdicts_total{outcome="error",verifier="head"}') == 1


async def test_the_shipped_head_scores_consistently(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    running = await serve(
        start_server, cascade_config(head={"threshold": 0.5}, confidence={"enabled": False})
    )
    for prompt in (RIGHT, WRONG):
        response = await running.stub.Complete(ask(prompt))
        assert 0 <= response.verifier_score <= 1
        assert response.escalated == (response.verifier_score < 0.5)
        if response.escalated:
            assert response.escalation_reason == f"head: P(good) {response.verifier_score:g} < 0.5"
        else:
            assert response.escalation_reason == ""


async def test_the_head_loads_when_the_classifier_serves_another_embedder_file(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    """`scoring.embedder` may serve a file the head was not trained on (`auto` picks int8_full where it is
    faster, an operator may name fp32): the shipped head, which never runs the embedder, still loads and
    verifies, with the real classifier scoring on fp32."""
    config = cascade_config(
        head={"threshold": 0.5}, confidence={"enabled": False}, scoring={"embedder": "fp32"}
    )
    scorer = load_scorer(config)
    assert scorer.embedder.variant == "model.onnx"  # type: ignore[attr-defined]
    running = await start_server(config, with_scorer=scorer)
    response = await running.stub.Complete(ask(RIGHT))
    assert response.decision.mode == "cascade" and response.decision.score < 0.9  # tried small
    assert 0 <= response.verifier_score <= 1, response.escalation_reason
    assert not response.escalation_reason.startswith("unverified")
    assert response.escalated == (response.verifier_score < 0.5)


async def test_embedder_files_timed_at_start_leave_the_head_sharing_the_file_chosen(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    """What `rightsize serve` does with `scoring.embedder: auto`: the files load during LiteLLM's import,
    the head loads on the provisional (trained) file, and the start times the files, then re-shares the
    file chosen with the head, which still verifies."""
    config = cascade_config(head={"threshold": 0.5}, confidence={"enabled": False})
    scorer = load_scorer(config, time_later=True)
    running = await start_server(config, with_scorer=scorer)
    assert not scorer.tuning_pending and scorer.tuning is not None  # type: ignore[attr-defined]
    head = running.server.live.current.verifier
    assert head is not None and head.embedder is scorer.embedder  # type: ignore[attr-defined]
    response = await running.stub.Complete(ask(RIGHT))
    assert 0 <= response.verifier_score <= 1, response.escalation_reason
    assert not response.escalation_reason.startswith("unverified")


async def test_a_buffered_stream_sends_the_verified_answer_or_streams_the_large_one(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    running = await serve(start_server, cascade_config(stream="buffer"))
    chunks = [chunk async for chunk in running.stub.CompleteStream(ask(RIGHT, request_id="s-right"))]
    assert "".join(c.delta for c in chunks) == RIGHT_ANSWER and chunks[0].decision.mode == "cascade"
    assert not chunks[-1].escalated and chunks[-1].verifier_score == pytest.approx(0.9512, abs=1e-3)
    chunks = [chunk async for chunk in running.stub.CompleteStream(ask(WRONG, request_id="s-wrong"))]
    assert "".join(c.delta for c in chunks) == LARGE_ANSWER and chunks[0].model == "openai/gpt-4o"
    last = chunks[-1]
    assert last.escalated and last.escalation_reason == "confidence: score 0.2231 < 0.5"
    assert last.usage.completion_tokens > 0
    record = logged(running, "s-wrong")
    assert record.rpc == "CompleteStream" and record.escalated is True
    assert (record.small_response, record.response) == (WRONG_ANSWER, LARGE_ANSWER)


async def test_an_unbuffered_stream_is_unverified(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    running = await serve(start_server, cascade_config(stream="off"))
    chunks = [chunk async for chunk in running.stub.CompleteStream(ask(WRONG))]
    assert "".join(c.delta for c in chunks) == WRONG_ANSWER
    assert not chunks[-1].escalated and chunks[-1].verifier_score == -1
    assert chunks[-1].escalation_reason == "unverified: streamed as generated (routing.cascade.stream: off)"


def test_nonsensical_cascade_settings_are_refused_naming_the_key(tmp_path: Path) -> None:
    base = "tiers:\n  small: {model: ollama_chat/x}\n  large: {model: openai/gpt-4o}\n"
    cases = {
        "routing:\n  mode: cascade\n  threshold: 0.6\n  cascade: {direct_large: 0.4}\n": (
            "routing.cascade.direct_large (0.4) is below routing.threshold (0.6)"
        ),
        "routing:\n  overrides: [{metadata: {t: a}, tier: small, mode: cascade}]\n": (
            "`mode: cascade` cannot go with `tier`"
        ),
        "routing:\n  overrides: [{metadata: {t: a}, threshold: 0.95, mode: cascade}]\n": (
            "below routing.overrides[0].threshold (0.95)"
        ),
        "routing:\n  cascade: {stream: maybe}\n": "routing.cascade.stream",
        "routing:\n  mode: casacde\n": "routing.mode",
    }
    for extra, expected in cases.items():
        path = tmp_path / "config.yaml"
        path.write_text(base + extra)
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert expected in str(caught.value), str(caught.value)


async def test_bad_cascade_input_is_still_invalid_argument(
    start_server: StartServer, cascade_config: MakeConfig
) -> None:
    running = await serve(start_server, cascade_config())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.stub.Complete(pb.CompleteRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
