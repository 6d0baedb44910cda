"""routing.speculative_small: the small-tier call starts while the prompt is scored (real server)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import grpc
import numpy as np
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from tests.router.conftest import StartServer
from tests.router.support import LARGE_REPLY, SMALL_REPLY, Backends, KeyedScorer, user

MakeConfig = Callable[..., RouterConfig]
SCORING_S = 0.4


def chats(backends: Backends) -> int:
    """Chat calls the small (Ollama) stand-in has received (LiteLLM may also ask it for model info)."""
    return sum(request["path"] == "/api/chat" for request in backends.small.requests)


class SlowScorer(KeyedScorer):
    """Takes SCORING_S per batch and notes how many requests the small stand-in had seen by its end."""

    def __init__(self, backends: Backends, default: float):
        super().__init__(default=default)
        self.backends = backends
        self.small_seen_when_scored: list[int] = []

    def score(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(SCORING_S)
        self.small_seen_when_scored.append(chats(self.backends))
        return super().score(texts)


def speculative(registry: object, outcome: str) -> float | None:
    return registry.get_sample_value(  # type: ignore[attr-defined]
        "rightsize_speculative_small_calls_total", {"outcome": outcome}
    )


async def test_a_small_routed_complete_reaches_the_small_tier_before_the_decision(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    scorer = SlowScorer(backends, default=0.1)
    server = await start_server(make_config(threshold=0.5, speculative_small=True), with_scorer=scorer)
    response = await server.stub.Complete(pb.CompleteRequest(messages=user("hello there")))
    assert (response.text, response.decision.tier, response.fallback) == (SMALL_REPLY, "small", False)
    assert scorer.small_seen_when_scored == [1]  # the call was already at the backend while scoring ran
    assert chats(backends) == 1 and backends.large.requests == []
    assert speculative(server.server.metrics.registry, "used") == 1


async def test_a_large_routed_complete_cancels_the_small_call_and_answers_from_large(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.delay_s = 5.0  # still generating when the decision comes
    scorer = SlowScorer(backends, default=0.9)
    server = await start_server(make_config(threshold=0.5, speculative_small=True), with_scorer=scorer)
    started = time.monotonic()
    response = await server.stub.Complete(pb.CompleteRequest(messages=user("design a database")))
    assert (response.text, response.decision.tier, response.fallback) == (LARGE_REPLY, "large", False)
    assert time.monotonic() - started < 3.0  # the slow small call was not waited for
    assert scorer.small_seen_when_scored == [1] and len(backends.large.requests) == 1
    registry = server.server.metrics.registry
    assert speculative(registry, "cancelled") == 1 and speculative(registry, "used") in (None, 0)
    # Cancelling is not a failure of the small tier: its circuit stays closed, no error is counted.
    assert registry.get_sample_value("rightsize_breaker_state", {"tier": "small"}) == 0
    errors = {"tier": "small", "kind": "timeout"}
    assert not registry.get_sample_value("rightsize_backend_errors_total", errors)


async def test_a_failed_speculative_call_falls_back_as_a_normal_one_would(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.status = 500
    scorer = SlowScorer(backends, default=0.1)
    server = await start_server(make_config(threshold=0.5, speculative_small=True), with_scorer=scorer)
    response = await server.stub.Complete(pb.CompleteRequest(messages=user("hello there")))
    assert (response.text, response.fallback) == (LARGE_REPLY, True)
    assert "small tier failed" in response.fallback_reason


async def test_no_speculation_when_off_forced_or_invalid(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    off = await start_server(make_config(threshold=0.5), with_scorer=SlowScorer(backends, default=0.1))
    await off.stub.Complete(pb.CompleteRequest(messages=user("hello")))
    assert off.server.pipeline.config.routing.speculative_small is False
    assert speculative(off.server.metrics.registry, "used") in (None, 0)
    scorer = SlowScorer(backends, default=0.1)
    on = await start_server(make_config(threshold=0.5, speculative_small=True), with_scorer=scorer)
    before = chats(backends)
    response = await on.stub.Complete(pb.CompleteRequest(messages=user("hello"), force_tier="large"))
    assert response.text == LARGE_REPLY and chats(backends) == before
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await on.stub.Complete(pb.CompleteRequest(messages=[pb.Message(role="system", content="x")]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and chats(backends) == before
