"""The cascade end to end: the embedded SmolLM2-135M (llama.cpp, which returns token log-probabilities) is
the small tier, a stand-in large tier knows the right answers, and the shipped classifier and answer head
decide. Whatever SmolLM2 answers, the three contract fields and the request log must agree with the
configured thresholds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.config import RouterConfig
from router.config.embedded import missing_requirement
from router.requestlog import LogRecord, open_store
from router.routing.cascade import VERIFIERS
from router.rpc.server import COMPLETION_HEALTH_SERVICE, RouterServer, create_server
from tests.router.standins import StandIn
from tests.router.support import Backends, config_dict, log_section, user
from tests.router.waiting import SERVING, wait_health, wait_until

MISSING = missing_requirement("smollm2-135m")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
]
GREEDY = pb.GenerationParams(max_tokens=32, temperature=0)
CONFIDENCE_MIN = 0.5
HEAD_THRESHOLD = 0.5
# Short prompts with checkable answers; the large stand-in answers each one correctly.
QUESTIONS = {
    "What is 2 + 3? Answer with a number.": "5",
    "What is 7 * 8? Answer with a number.": "56",
    "What is the capital of France?": "Paris",
    "What is the capital of Japan?": "Tokyo",
    "Is water wet? Answer yes or no.": "yes",
    "Is the sun cold? Answer yes or no.": "no",
}
THRESHOLDS = {"confidence": CONFIDENCE_MIN, "head": HEAD_THRESHOLD}


@pytest.fixture
def large() -> Iterator[StandIn]:
    stand_in = StandIn("openai", reply="I do not know.")
    stand_in.answers = {question: (answer, None) for question, answer in QUESTIONS.items()}
    yield stand_in
    stand_in.kill()


@pytest.fixture
async def served(large: StandIn, scorer: object, tmp_path: Path) -> AsyncIterator[tuple[RouterServer, str]]:
    small = StandIn("openai")  # replaced by the embedded tier below, never asked
    raw = config_dict(
        Backends(small, large),
        threshold=0.5,
        mode="cascade",
        cascade={
            "direct_large": 1.0,  # every prompt tries the small model first
            # A cut-off answer of at least 16 tokens passes the form check (the others then decide).
            "form": {"truncated_min_tokens": 16},
            "confidence": {"min_score": CONFIDENCE_MIN},
            "head": {"threshold": HEAD_THRESHOLD},  # the shipped models/verifier
        },
    )
    raw["tiers"]["small"] = {"embedded": "smollm2-135m", "timeout": 60}
    raw.update(log_section(tmp_path))
    server, port = create_server(RouterConfig.model_validate(raw), scorer=scorer)  # type: ignore[arg-type]
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await wait_health(channel, COMPLETION_HEALTH_SERVICE, SERVING, timeout_s=120)
        yield server, f"127.0.0.1:{port}"
    finally:
        await channel.close()
        await server.stop(0)
        small.kill()


def logged(url: str, request_ids: list[str]) -> dict[str, LogRecord]:
    store = open_store(url)
    try:
        wait_until(lambda: all(store.get(rid) is not None for rid in request_ids), timeout_s=15)
        return {rid: store.get(rid) for rid in request_ids}  # type: ignore[misc]
    finally:
        store.close()


async def test_every_cascaded_answer_is_consistent_with_its_verdict_and_its_log_row(
    served: tuple[RouterServer, str], large: StandIn
) -> None:
    server, address = served
    responses: dict[str, pb.CompleteResponse] = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.RouterStub(channel)
        for number, question in enumerate(QUESTIONS):
            request = pb.CompleteRequest(messages=user(question), params=GREEDY, request_id=f"q{number}")
            responses[f"q{number}"] = await stub.Complete(request, timeout=60)
    records = logged(server.config.log.url, list(responses))
    for (rid, response), question in zip(responses.items(), QUESTIONS, strict=True):
        record = records[rid]
        assert response.decision.mode == "cascade" and response.decision.tier == "small"
        checks = json.loads(record.verifier_inputs or "{}")["checks"]
        assert checks.get("confidence", ["not run"])[0] != "skipped"  # llama.cpp returned log-probabilities
        ran = [verifier for verifier in VERIFIERS if verifier in checks]  # cheapest first; the last decided
        decider, (outcome, value) = ran[-1], checks[ran[-1]]
        form_failed = checks["form"][0] == "fail"
        if form_failed:
            assert response.verifier_score == 0.0
        else:
            assert 0.0 <= response.verifier_score <= 1.0 and response.verifier_score == pytest.approx(value)
        below = decider in THRESHOLDS and response.verifier_score < THRESHOLDS[decider]
        assert response.escalated == (below or form_failed), (question, checks, response.escalation_reason)
        assert (outcome == "fail") == response.escalated
        assert record.escalated is response.escalated
        assert record.verifier_score == pytest.approx(response.verifier_score)
        assert record.small_response and record.small_model == "hosted_vllm/smollm2-135m"
        if response.escalated:
            assert response.escalation_reason.startswith(f"{decider}: ") or form_failed
            if not form_failed:
                assert f"{value:g}" in response.escalation_reason
            assert response.text == QUESTIONS[question] and response.model == "openai/gpt-4o"
            assert record.response == response.text and record.small_response != record.response
        else:
            assert response.escalation_reason == "" and response.text == record.small_response
    escalated = sum(response.escalated for response in responses.values())
    decided = {
        json.loads(records[rid].verifier_inputs or "{}")["checks"].get("head", [""])[0] for rid in records
    }
    assert decided & {"pass", "fail"}  # the answer head ran on some answers, not only the cheap checks
    assert len(large.requests) == escalated
