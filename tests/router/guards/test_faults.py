"""Backend failure modes end in a fallback answer or a clean status, never a hang; the circuit breaker."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.config.settings import BreakerSettings
from tests.router.conftest import Running, StartServer
from tests.router.guards.helpers import status_of
from tests.router.standins import StandIn
from tests.router.support import LARGE_REPLY, SMALL_REPLY, TASK_PROMPT, Backends, FakeClock, KeyedScorer, user
from tests.router.waiting import NOT_SERVING, SERVING, health

MakeConfig = Callable[..., RouterConfig]
REQUEST = pb.CompleteRequest(messages=user(TASK_PROMPT))


def faulty_config(
    make_config: MakeConfig, breaker: BreakerSettings | None = None, **small: Any
) -> RouterConfig:
    """The stand-ins' config with `small` settings replaced; the breaker off unless given."""
    config = make_config(breaker=(breaker or BreakerSettings(enabled=False)).model_dump())
    return with_small(config, **small)


def with_small(config: RouterConfig, **small: Any) -> RouterConfig:
    tier = config.tiers.small.model_copy(update=small)
    return config.model_copy(update={"tiers": config.tiers.model_copy(update={"small": tier})})


async def warm(server: Running, **small: Any) -> None:
    """One good call (LiteLLM's first call to a provider is slow), then the small tier's settings changed."""
    assert (await server.stub.Complete(REQUEST, timeout=10)).text == SMALL_REPLY
    live = server.server.live
    live.install(config=with_small(live.current.config, **small))


async def _fallback(server: Running) -> tuple[pb.CompleteResponse, float]:
    started = time.monotonic()
    response = await server.stub.Complete(REQUEST, timeout=5)
    return response, time.monotonic() - started


@pytest.mark.parametrize("fault", ["refused", "5xx", "slow_first_byte", "malformed_json", "empty"])
async def test_a_failing_small_tier_falls_back_to_large(
    fault: str, start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    small = backends.small
    server = await start_server(faulty_config(make_config), with_scorer=KeyedScorer())
    await warm(server, timeout=0.5)
    if fault == "refused":
        small.kill()
    elif fault == "5xx":
        small.status = 503
    elif fault == "slow_first_byte":
        small.delay_s = 5.0
    elif fault == "malformed_json":
        small.raw_body = '{"model": "x", "message": {"content": '
    else:
        small.reply = ""
    response, elapsed = await _fallback(server)
    assert (response.text, response.fallback) == (LARGE_REPLY, True), fault
    assert response.fallback_reason.startswith("small tier failed"), response.fallback_reason
    assert elapsed < 2.0
    stream = [chunk async for chunk in server.stub.CompleteStream(REQUEST, timeout=5)]
    assert "".join(chunk.delta for chunk in stream) == LARGE_REPLY and stream[0].fallback


async def test_a_429_falls_back_and_its_retry_after_is_respected(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    # An OpenAI-compatible small tier (e.g. vLLM): LiteLLM reads its 429's Retry-After header.
    vllm = StandIn("openai", reply=SMALL_REPLY)
    backends.small.kill()
    backends.small = vllm
    config = faulty_config(
        make_config,
        BreakerSettings(failures=50),
        model="openai/small",
        api_base=vllm.url,
        api_key=SecretStr("sk-small"),
        timeout=5,
    )
    clock = FakeClock()
    server = await start_server(config, with_scorer=KeyedScorer(), clock=clock)
    vllm.status, vllm.retry_after_s = 429, 1.0
    first, _ = await _fallback(server)
    assert first.fallback and "rate_limit" in first.fallback_reason
    calls = len(backends.small.requests)
    backends.small.status = None
    second, elapsed = await _fallback(server)
    assert second.fallback and "circuit_open" in second.fallback_reason and elapsed < 0.5
    assert len(backends.small.requests) == calls  # not called again before Retry-After passed
    clock.advance(1.1)
    third, _ = await _fallback(server)
    assert (third.text, third.fallback) == (SMALL_REPLY, False)


async def test_a_stream_that_stalls_after_tokens_ends_with_an_error_not_a_fallback(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    server = await start_server(faulty_config(make_config), with_scorer=KeyedScorer())
    await warm(server, timeout=30, idle_timeout=0.4)
    backends.small.reply = "one two three four five six"
    backends.small.stall_after = 2
    received: list[pb.CompleteChunk] = []
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for chunk in server.stub.CompleteStream(REQUEST, timeout=10):
            received.append(chunk)
    details = caught.value.details() or ""
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "small tier" in details and "timeout" in details
    *answer, last = received
    assert "".join(chunk.delta for chunk in answer) == "one two" and time.monotonic() - started < 2.0
    assert not any(chunk.error for chunk in answer)
    # The client is told in the last message too, with the status's own text and no more tokens.
    assert (last.error, last.delta) == (details, "")
    assert len(backends.large.requests) == 0  # no silent switch to another model mid-answer


async def test_a_failing_large_tier_is_a_clean_unavailable(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.large.status = 500
    server = await start_server(faulty_config(make_config), with_scorer=KeyedScorer(default=0.9))
    error = await status_of(server.stub.Complete(REQUEST, timeout=5))
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "large tier" in (error.details() or "")
    # A stream that fails before its first token is only a status: no message with `error`.
    received: list[pb.CompleteChunk] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for chunk in server.stub.CompleteStream(REQUEST, timeout=5):
            received.append(chunk)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and received == []


async def test_the_breaker_opens_skips_the_tier_at_once_and_closes_after_a_probe(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    config = faulty_config(make_config, BreakerSettings(failures=2, open_s=1.0))
    clock = FakeClock()
    server = await start_server(config, with_scorer=KeyedScorer(), clock=clock)
    await warm(server, timeout=0.5)
    backends.small.delay_s = 5.0
    service = "rightsize.v1.Router/breaker/small"
    assert await health(server.channel, service) == SERVING
    for _ in range(2):
        paid, elapsed = await _fallback(server)
        assert paid.fallback and elapsed >= 0.45  # the small tier's timeout, paid
    skipped, elapsed = await _fallback(server)
    assert skipped.fallback and "circuit_open" in skipped.fallback_reason and elapsed < 0.3
    assert await health(server.channel, service) == NOT_SERVING
    metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(server.metrics_url).read().decode())
    assert 'rightsize_breaker_state{tier="small"} 1.0' in metrics
    backends.small.delay_s = 0.0
    clock.advance(1.05)
    probed, _ = await _fallback(server)
    assert (probed.text, probed.fallback) == (SMALL_REPLY, False)
    assert await health(server.channel, service) == SERVING


async def test_a_stream_cut_by_the_server_default_deadline_after_tokens_also_says_why(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    """The client sent no deadline: the server's default one ends the stream, with the same last message."""
    config = faulty_config(make_config)
    limits = config.server.limits.model_copy(update={"default_deadline_s": 1.5})
    config = config.model_copy(update={"server": config.server.model_copy(update={"limits": limits})})
    server = await start_server(config, with_scorer=KeyedScorer())
    await warm(server, timeout=30, idle_timeout=None)
    backends.small.reply = "one two three four five six"
    backends.small.stall_after = 2
    received: list[pb.CompleteChunk] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for chunk in server.stub.CompleteStream(REQUEST):  # no client deadline
            received.append(chunk)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    *answer, last = received
    assert "".join(chunk.delta for chunk in answer) == "one two"
    assert last.delta == "" and last.error == caught.value.details()
