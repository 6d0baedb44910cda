"""Feedback -> label through the real server, and shadow sampling that never delays nor fails the client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.requestlog import RequestLogStore, open_store
from tests.router.conftest import StartServer
from tests.router.support import (
    LARGE_REPLY,
    SMALL_REPLY,
    Backends,
    KeyedScorer,
    config_dict,
    log_section,
    user,
)


def learning_config(
    backends: Backends, tmp_path: Path, log: dict[str, Any] | None = None, **learning: Any
) -> RouterConfig:
    raw = {**config_dict(backends), **log_section(tmp_path), "learning": learning}
    raw["log"] = {**raw["log"], **(log or {})}
    return RouterConfig.model_validate(raw)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = open_store(f"sqlite:///{tmp_path / 'requestlog' / 'requests.db'}")
    yield opened
    opened.close()


async def test_feedback_right_after_the_answer_labels_it_and_the_last_one_wins(
    start_server: StartServer, backends: Backends, tmp_path: Path, store: RequestLogStore
) -> None:
    # A long flush interval: the record is still in memory when the feedback arrives.
    config = learning_config(backends, tmp_path, log={"flush_interval_ms": 30_000})
    running = await start_server(config, with_scorer=KeyedScorer(default=0.2))
    answer = await running.stub.Complete(pb.CompleteRequest(messages=user("easy one")))
    assert answer.decision.tier == "small"

    await running.stub.Feedback(pb.FeedbackRequest(request_id=answer.request_id, rating=pb.GOOD, score=0.9))
    first = store.get(answer.request_id)
    assert first is not None
    assert (first.small_ok, first.label_source, first.feedback_rating, first.feedback_score) == (
        1,
        "feedback",
        "GOOD",
        0.9,
    )

    await running.stub.Feedback(
        pb.FeedbackRequest(request_id=answer.request_id, rating=pb.BAD, comment="wrong year")
    )
    last = store.get(answer.request_id)
    assert last is not None
    assert (last.small_ok, last.feedback_rating, last.feedback_score, last.feedback_comment) == (
        0,
        "BAD",
        None,
        "wrong year",
    )


async def test_feedback_on_a_large_tier_answer_is_kept_without_a_small_ok_label(
    start_server: StartServer, backends: Backends, tmp_path: Path, store: RequestLogStore
) -> None:
    running = await start_server(learning_config(backends, tmp_path), with_scorer=KeyedScorer(default=0.9))
    answer = await running.stub.Complete(pb.CompleteRequest(messages=user("hard one")))
    assert answer.decision.tier == "large"
    await running.stub.Feedback(pb.FeedbackRequest(request_id=answer.request_id, rating=pb.GOOD))
    record = store.get(answer.request_id)
    assert record is not None
    assert (record.small_ok, record.feedback_rating, record.label_source) == (None, "GOOD", "feedback")


@pytest.mark.parametrize(
    ("request_id", "rating", "score", "code"),
    [
        ("unknown", pb.GOOD, 0.0, grpc.StatusCode.NOT_FOUND),
        ("", pb.GOOD, 0.0, grpc.StatusCode.INVALID_ARGUMENT),
        ("x", pb.RATING_UNSPECIFIED, 0.0, grpc.StatusCode.INVALID_ARGUMENT),
        ("x", pb.BAD, 1.5, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_bad_feedback_gets_a_clean_status(
    start_server: StartServer,
    backends: Backends,
    tmp_path: Path,
    request_id: str,
    rating: int,
    score: float,
    code: grpc.StatusCode,
) -> None:
    running = await start_server(learning_config(backends, tmp_path), with_scorer=KeyedScorer())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.stub.Feedback(
            pb.FeedbackRequest(
                request_id=request_id,
                rating=rating,  # type: ignore[arg-type]
                score=score,
            )
        )
    assert raised.value.code() == code


async def wait_for_answers(store: RequestLogStore, request_id: str, timeout_s: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answers = store.answers(request_id)
        if len(answers) == 2:
            return answers
        await asyncio.sleep(0.05)
    raise AssertionError(f"no shadow pair for {request_id}")


async def test_a_shadow_call_never_delays_the_client_and_both_answers_are_logged(
    start_server: StartServer, backends: Backends, tmp_path: Path, store: RequestLogStore
) -> None:
    running = await start_server(
        learning_config(backends, tmp_path, shadow_rate=1.0), with_scorer=KeyedScorer(default=0.2)
    )
    await running.stub.Complete(pb.CompleteRequest(messages=user("warm up")))  # LiteLLM's first-call costs
    backends.large.delay_s = 1.5
    started = time.perf_counter()
    answer = await running.stub.Complete(pb.CompleteRequest(messages=user("what is 2 + 2?")))
    elapsed = time.perf_counter() - started

    assert answer.text == SMALL_REPLY and answer.decision.tier == "small"
    assert elapsed < 0.75, f"the client waited {elapsed:.2f} s for its small-tier answer"
    large, small = await wait_for_answers(store, answer.request_id)
    assert (large.tier, large.response, large.error) == ("large", LARGE_REPLY, None)
    assert (small.tier, small.response) == ("small", SMALL_REPLY)
    assert large.cost_usd and large.cost_usd > 0


async def test_a_failing_shadow_call_never_fails_the_client(
    start_server: StartServer, backends: Backends, tmp_path: Path, store: RequestLogStore
) -> None:
    running = await start_server(
        learning_config(backends, tmp_path, shadow_rate=1.0), with_scorer=KeyedScorer(default=0.2)
    )
    backends.large.status = 500
    answer = await running.stub.Complete(pb.CompleteRequest(messages=user("what is 3 + 3?")))
    assert answer.text == SMALL_REPLY and not answer.fallback
    large, _ = await wait_for_answers(store, answer.request_id)
    assert large.response is None and "500" in (large.error or "")


async def test_no_shadow_calls_at_rate_zero_nor_for_large_tier_answers(
    start_server: StartServer, backends: Backends, tmp_path: Path
) -> None:
    running = await start_server(
        learning_config(backends, tmp_path, shadow_rate=0.0), with_scorer=KeyedScorer(default=0.2)
    )
    for i in range(5):
        await running.stub.Complete(pb.CompleteRequest(messages=user(f"q {i}")))
    await asyncio.sleep(0.2)
    assert backends.large.requests == []


async def test_log_redact_masks_shadow_answers_and_feedback_comments_before_storing(
    start_server: StartServer, backends: Backends, tmp_path: Path, store: RequestLogStore
) -> None:
    config = learning_config(backends, tmp_path, log={"redact": {"builtin": ["email"]}}, shadow_rate=1.0)
    running = await start_server(config, with_scorer=KeyedScorer(default=0.2))
    backends.small.reply = "write to ann.small@example.com"
    backends.large.reply = "the teacher says: mail bob.large@example.org"
    answer = await running.stub.Complete(pb.CompleteRequest(messages=user("who do I write to?")))
    assert answer.text == "write to ann.small@example.com"  # the client gets the answer as it is
    large, small = await wait_for_answers(store, answer.request_id)
    assert (large.response, small.response) == ("the teacher says: mail [EMAIL]", "write to [EMAIL]")

    await running.stub.Feedback(
        pb.FeedbackRequest(
            request_id=answer.request_id, rating=pb.BAD, comment="ask carol@example.net instead"
        )
    )
    record = store.get(answer.request_id)
    assert record is not None and record.feedback_comment == "ask [EMAIL] instead"
