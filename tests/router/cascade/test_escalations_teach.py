"""Escalations teach the small model: with few-shot on, the large answer given after an escalation becomes an
exemplar of its tenant (at once with routing.cascade.approve_escalations, else once approved as any large
answer is), and the next similar prompt's small call has it in front of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.fewshot.sources import approved_pairs
from router.requestlog import Label, open_store
from tests.router.conftest import Running, StartServer
from tests.router.standins import StandIn
from tests.router.support import MODEL_DIR, log_section, user
from tests.router.waiting import until

FIRST = "Extract the price and currency as JSON: 'The kettle costs 24.99 EUR.'"
SIMILAR = "Extract the price and currency as JSON: 'The lamp sells for 45 CHF.'"
WRONG = '{"price": 2499, "currency": "EURO"}'
RIGHT = '{"price": 24.99, "currency": "EUR"}'


@pytest.fixture
def tiers() -> Iterator[tuple[StandIn, StandIn]]:
    small, large = StandIn("openai", reply='{"price": 45, "currency": "CHF"}'), StandIn("openai", reply=RIGHT)
    small.answers = {"kettle": (WRONG, -1.5)}  # unsure: the confidence verifier escalates it
    yield small, large
    small.kill()
    large.kill()


def config(tiers: tuple[StandIn, StandIn], tmp_path: Path, approve: bool) -> RouterConfig:
    small, large = tiers
    return RouterConfig.model_validate(
        {
            "server": {"address": "127.0.0.1:0", "metrics_port": 0, "grace_period_s": 2},
            "tiers": {
                "small": {
                    "model": "hosted_vllm/smol",
                    "api_base": small.url,
                    "timeout": 10,
                    # The test refreshes the store itself: the periodic refresh is out of reach.
                    "few_shot": {"enabled": True, "k": 2, "min_similarity": 0.5, "refresh_s": 3600},
                },
                "large": {"model": "openai/gpt-4o", "api_base": large.url, "api_key": "sk-test"},
            },  # fmt: skip
            "routing": {
                "threshold": 1.0,  # every prompt goes to the small tier first
                "mode": "cascade",
                "cascade": {"direct_large": 1.0, "head": {"enabled": False}, "approve_escalations": approve},
            },
            "models": {"dir": str(MODEL_DIR.parent), "active": MODEL_DIR.name},
            **log_section(tmp_path),
        }
    )


def small_call_messages(small: StandIn) -> list[tuple[str, str]]:
    body: dict[str, Any] = small.requests[-1]["body"]
    return [(m["role"], m["content"]) for m in body["messages"]]


async def complete(running: Running, text: str, request_id: str) -> pb.CompleteResponse:
    request = pb.CompleteRequest(messages=user(text), metadata={"tenant": "acme"}, request_id=request_id)
    return await running.stub.Complete(request)


async def refreshed(running: Running) -> int:
    """Rebuild the exemplar store from the log now; its size."""
    fewshot = running.server.pipeline.fewshot
    assert fewshot is not None
    await until(lambda: fewshot.ready)
    await fewshot.refresh()
    assert fewshot.store is not None
    return len(fewshot.store)


async def wait_logged(running: Running, request_id: str) -> dict[str, Any]:
    """Wait until the request is in the log; the verifier inputs logged with it."""
    store = open_store(running.server.config.log.url)
    try:
        await until(lambda: store.get(request_id) is not None)
        record = store.get(request_id)
    finally:
        store.close()
    assert record is not None
    inputs: dict[str, Any] = json.loads(record.verifier_inputs or "{}")
    return inputs


@pytest.mark.parametrize("approve", [True, False], ids=["approve_escalations", "approval_rules"])
async def test_an_escalated_large_answer_becomes_the_next_similar_prompts_exemplar(
    start_server: StartServer, tiers: tuple[StandIn, StandIn], tmp_path: Path, approve: bool
) -> None:
    small, _ = tiers
    running = await start_server(config(tiers, tmp_path, approve))
    first = await complete(running, FIRST, "first")
    assert first.escalated and first.text == RIGHT
    assert (await wait_logged(running, "first"))["exemplars"] == 0

    if not approve:
        # Not approved yet: the usual rules hold (min_quality, a GOOD rating or a judge's label).
        assert await refreshed(running) == 0
        await complete(running, SIMILAR, "before")
        assert ("assistant", RIGHT) not in small_call_messages(small)
        await running.stub.Feedback(pb.FeedbackRequest(request_id="first", rating=pb.Rating.GOOD))
    assert await refreshed(running) == 1

    later = await complete(running, SIMILAR, "later")
    assert list(later.exemplar_ids) == ["log-first"]
    assert small_call_messages(small)[-3:] == [("user", FIRST), ("assistant", RIGHT), ("user", SIMILAR)]
    assert (await wait_logged(running, "later"))["exemplars"] == 1  # what the answer head reads
    other = await running.stub.Complete(
        pb.CompleteRequest(messages=user(SIMILAR), metadata={"tenant": "globex"})
    )
    assert list(other.exemplar_ids) == []  # its tenant's only


def test_approve_escalations_respects_the_approval_vetoes(tmp_path: Path) -> None:
    """A BAD rating, an answer that failed its schema, or a quality under min_quality is never approved."""
    from tests.router.fewshot.support import record, seeded_log

    escalated = {"tier": "small", "escalated": True, "mode": "cascade", "small_response": WRONG}
    store = seeded_log(
        tmp_path / "r.db",
        [
            (record(1, FIRST, RIGHT, **escalated), None),
            (record(2, SIMILAR, RIGHT, **escalated), Label(small_ok=None, source="feedback", rating="BAD")),
            (record(3, SIMILAR + " 2", RIGHT, schema_valid=False, **escalated), None),
            (record(4, SIMILAR + " 3", RIGHT, **escalated), Label(None, "feedback", "GOOD", score=0.2)),
            (record(5, SIMILAR + " 4", RIGHT, tier="small"), None),  # a small answer that stood
        ],
    )
    try:
        # Without the switch, only req-4 (rated GOOD: the client saw the large answer) is approved.
        assert [(p.request_id, p.approval) for p in approved_pairs(store)] == [("req-4", "feedback")]
        pairs = list(approved_pairs(store, approve_escalations=True, min_quality=0.5))
        assert [(p.request_id, p.approval, p.answer) for p in pairs] == [("req-1", "escalation", RIGHT)]
    finally:
        store.close()
