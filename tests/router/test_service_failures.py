"""Failures through the real server: fallback, both tiers down, bad input, deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from tests.router.conftest import StartServer
from tests.router.support import LARGE_REPLY, SMALL_REPLY, Backends, KeyedScorer, user

MakeConfig = Callable[..., RouterConfig]
SMALL_SCORE = KeyedScorer(default=0.1)  # below every threshold used here: the policy picks small


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    """The error a unary or streaming call ends with (the test fails if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        if isinstance(call, grpc.aio.UnaryStreamCall):
            [chunk async for chunk in call]
        else:
            await call
    return raised.value


@pytest.mark.parametrize("breakage", ["killed", "http 503"])
async def test_a_failing_small_tier_falls_back_to_large(
    start_server: StartServer, make_config: MakeConfig, backends: Backends, breakage: str
) -> None:
    if breakage == "killed":
        backends.small.kill()
    else:
        backends.small.status = 503
    server = await start_server(make_config(), with_scorer=SMALL_SCORE)
    response = await server.stub.Complete(pb.CompleteRequest(messages=user("hi")))
    assert response.text == LARGE_REPLY and response.model == "openai/gpt-4o"
    assert response.decision.tier == "small"  # the decision stands; the answer came from the fallback
    assert response.fallback is True
    # LiteLLM reports Ollama's HTTP errors as connection errors too; the reason keeps the backend's words.
    assert response.fallback_reason.startswith("small tier failed (connection):")
    assert breakage == "killed" or "stand-in error 503" in response.fallback_reason
    assert response.cost_usd > 0 and response.usage.completion_tokens == len(LARGE_REPLY.split())


async def test_stream_falls_back_before_the_first_chunk(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.kill()
    server = await start_server(make_config(), with_scorer=SMALL_SCORE)
    chunks = [chunk async for chunk in server.stub.CompleteStream(pb.CompleteRequest(messages=user("hi")))]
    assert "".join(chunk.delta for chunk in chunks) == LARGE_REPLY
    assert all(chunk.fallback for chunk in chunks)
    assert chunks[0].fallback_reason.startswith("small tier failed (connection):")
    assert chunks[0].model == "openai/gpt-4o" and chunks[0].decision.tier == "small"


async def test_a_slow_small_tier_times_out_and_falls_back(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.delay_s = 5
    config = make_config()
    small = config.tiers.small.model_copy(update={"timeout": 0.3})
    config = config.model_copy(update={"tiers": config.tiers.model_copy(update={"small": small})})
    server = await start_server(config, with_scorer=SMALL_SCORE)
    started = time.monotonic()
    response = await server.stub.Complete(pb.CompleteRequest(messages=user("hi")), timeout=5)
    assert time.monotonic() - started < 2
    assert response.fallback and response.fallback_reason.startswith("small tier failed (timeout):")
    assert response.text == LARGE_REPLY


async def test_both_tiers_down_is_unavailable_naming_both(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.kill()
    backends.large.status = 500
    server = await start_server(make_config(), with_scorer=SMALL_SCORE)
    for call in (
        server.stub.Complete(pb.CompleteRequest(messages=user("hi"))),
        server.stub.CompleteStream(pb.CompleteRequest(messages=user("hi"))),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        details = error.details() or ""
        assert "small tier (ollama_chat/llama3:8b) connection" in details
        assert "large tier (openai/gpt-4o) server" in details


async def test_no_fallback_when_disabled_or_when_the_tier_was_forced(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.kill()
    disabled = await start_server(make_config(fallback=False), with_scorer=SMALL_SCORE)
    error = await rpc_error(disabled.stub.Complete(pb.CompleteRequest(messages=user("hi"))))
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "small tier" in (error.details() or "")
    enabled = await start_server(make_config(), with_scorer=SMALL_SCORE)
    forced = pb.CompleteRequest(messages=user("hi"), force_tier="small")
    error = await rpc_error(enabled.stub.Complete(forced))
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "large tier" not in (error.details() or "")
    assert backends.large.requests == []


BAD_REQUESTS = [
    ([], "", "messages is empty"),
    ([pb.Message(role="system", content="be nice")], "", "no message has role 'user'"),
    ([pb.Message(role="robot", content="beep"), *user("hi")], "", "messages[0].role is 'robot'"),
    (user("hi"), "medium", "force_tier is 'medium'"),
    (user("x" * 1001), "", "1001 characters, over the limit of 1000"),
    ([pb.Message(role="user", content="  ")], "", "the last user message is empty"),
]


@pytest.mark.parametrize(("messages", "force_tier", "message"), BAD_REQUESTS)
async def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(
    start_server: StartServer,
    make_config: MakeConfig,
    backends: Backends,
    messages: list[pb.Message],
    force_tier: str,
    message: str,
) -> None:
    server = await start_server(make_config(max_prompt_chars=1000), with_scorer=SMALL_SCORE)
    request = pb.CompleteRequest(messages=messages, force_tier=force_tier)
    calls = [server.stub.Complete(request), server.stub.CompleteStream(request)]
    if not force_tier:
        calls.append(server.stub.Route(pb.RouteRequest(messages=messages)))
    for call in calls:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (error.details() or "")
    assert backends.small.requests == [] and backends.large.requests == []
    ok = await server.stub.Complete(pb.CompleteRequest(messages=user("hi")))
    assert ok.text == SMALL_REPLY


async def test_the_client_deadline_reaches_the_backend_call(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.delay_s = 5
    server = await start_server(make_config(), with_scorer=SMALL_SCORE)
    started = time.monotonic()
    error = await rpc_error(server.stub.Complete(pb.CompleteRequest(messages=user("hi")), timeout=0.5))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.5
    assert backends.large.requests == []  # no time was left for a fallback
    # The backend's own timeout ended the call server-side (not only the client giving up).
    registry = server.server.metrics.registry
    labels = {"tier": "small", "kind": "timeout"}
    assert registry.get_sample_value("rightsize_backend_errors_total", labels) == 1
    backends.small.delay_s = 0
    response = await server.stub.Complete(pb.CompleteRequest(messages=user("hi")), timeout=5)
    assert response.text == SMALL_REPLY
