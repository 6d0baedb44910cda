"""A tier whose API key is not set: answered by the other tier with a reason naming the variable, offline."""

from __future__ import annotations

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.rpc.server import TIER_HEALTH_SERVICES
from tests.router.conftest import StartServer
from tests.router.support import SMALL_REPLY, Backends, KeyedScorer, config_dict, user
from tests.router.waiting import NOT_SERVING, SERVING, health, wait_health

UNSET = "RIGHTSIZE_TEST_UNSET_KEY"
REASON = f"large tier openai/gpt-4o has no API key: set {UNSET}"


def keyless_config(backends: Backends, **routing: object) -> RouterConfig:
    raw = config_dict(backends, **routing)
    large = raw["tiers"]["large"]
    del large["api_key"]
    large["api_key_env"] = UNSET
    return RouterConfig.model_validate(raw)


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)


async def test_a_large_routed_complete_is_answered_by_small_saying_what_to_set(
    start_server: StartServer, backends: Backends
) -> None:
    running = await start_server(keyless_config(backends), with_scorer=KeyedScorer(default=0.9))
    response = await running.stub.Complete(pb.CompleteRequest(messages=user("a hard one")), timeout=10)
    assert response.decision.tier == "large" and response.decision.model == "openai/gpt-4o"
    assert (response.text, response.model) == (SMALL_REPLY, "ollama_chat/llama3:8b")
    assert response.fallback and response.fallback_reason == REASON
    chunks = [
        chunk
        async for chunk in running.stub.CompleteStream(
            pb.CompleteRequest(messages=user("a hard one")), timeout=10
        )
    ]
    assert "".join(chunk.delta for chunk in chunks) == SMALL_REPLY
    assert chunks[0].fallback and chunks[0].fallback_reason == REASON
    assert backends.large.requests == []  # known without a network round trip
    await wait_health(running.channel, TIER_HEALTH_SERVICES["small"], SERVING)
    assert await health(running.channel, TIER_HEALTH_SERVICES["large"]) == NOT_SERVING
    registry = running.server.metrics.registry
    assert registry.get_sample_value("rightsize_fallbacks_total", {"kind": "unconfigured"}) == 2


@pytest.mark.parametrize(("force_tier", "routing"), [("large", {}), ("", {"fallback": False})])
async def test_without_fallback_the_call_fails_at_once_naming_the_variable(
    start_server: StartServer, backends: Backends, force_tier: str, routing: dict[str, object]
) -> None:
    running = await start_server(keyless_config(backends, **routing), with_scorer=KeyedScorer(default=0.9))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.stub.Complete(pb.CompleteRequest(messages=user("x"), force_tier=force_tier), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == f"large tier (openai/gpt-4o) unconfigured: has no API key: set {UNSET}"
    assert backends.large.requests == []


async def test_a_failed_small_tier_with_a_keyless_large_names_both(
    start_server: StartServer, backends: Backends
) -> None:
    running = await start_server(keyless_config(backends), with_scorer=KeyedScorer(default=0.1))
    backends.small.kill()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.stub.Complete(pb.CompleteRequest(messages=user("x")), timeout=10)
    details = raised.value.details() or ""
    assert details.startswith("all tiers failed: small tier (ollama_chat/llama3:8b) connection")
    assert details.endswith(f"large tier (openai/gpt-4o) unconfigured: has no API key: set {UNSET}")
