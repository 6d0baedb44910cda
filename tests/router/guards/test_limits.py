"""Bounds on a real server: message size and count, calls in flight, rate limit, default deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.config.guards import ApiKeyEntry, AuthSettings, LimitsSettings, RateLimitSettings
from router.rpc.auth import create_key
from router.rpc.limits import RETRY_AFTER_KEY, TokenBucket
from tests.router.conftest import StartServer
from tests.router.guards.helpers import status_of, with_server
from tests.router.support import Backends, KeyedScorer, user
from tests.router.waiting import SERVING, health

MakeConfig = Callable[..., RouterConfig]


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(RateLimitSettings(per_second=2, burst=2), clock=lambda: now[0])
    assert [bucket.take("a"), bucket.take("a")] == [0.0, 0.0]
    assert bucket.take("a") == 0.5  # one token every 0.5 s
    assert bucket.take("b") == 0.0  # buckets are per client
    now[0] = 0.25
    assert bucket.take("a") == 0.25
    now[0] = 10.0
    assert [bucket.take("a"), bucket.take("a"), bucket.take("a") > 0] == [0.0, 0.0, True]


async def test_too_many_messages_and_too_many_bytes_are_refused(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    limits = LimitsSettings(max_messages=3, max_message_bytes=64 * 1024)
    server = await start_server(
        with_server(make_config(), limits=limits), with_scorer=KeyedScorer(), wait_completion=False
    )
    many = pb.RouteRequest(messages=user("hi") * 4)
    refused = await status_of(server.stub.Route(many))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and "4 messages" in (refused.details() or "")
    huge = pb.RouteRequest(messages=user("x" * 100_000))
    assert (await status_of(server.stub.Route(huge))).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await server.stub.Route(pb.RouteRequest(messages=user("hi") * 3))).decision.tier == "small"
    assert await health(server.channel, "") == SERVING


async def test_calls_beyond_the_concurrency_bound_are_refused_at_once(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.delay_s = 1.0
    limits = LimitsSettings(max_concurrent_calls=2)
    server = await start_server(
        with_server(make_config(fallback=False), limits=limits), with_scorer=KeyedScorer()
    )
    request = pb.CompleteRequest(messages=user("hi"))
    slow = [asyncio.ensure_future(server.stub.Complete(request, timeout=10)) for _ in range(2)]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    busy = await status_of(server.stub.Complete(request, timeout=10))
    assert busy.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.monotonic() - started < 0.3  # refused, not queued
    assert [response.text for response in await asyncio.gather(*slow)] == ["small tier answer"] * 2
    assert (await server.stub.Route(pb.RouteRequest(messages=user("hi")))).decision.tier == "small"


async def test_the_rate_limit_is_per_key_and_says_when_to_retry(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    first, second = create_key(), create_key()
    auth = AuthSettings(api_keys=(ApiKeyEntry(hash=first.hash), ApiKeyEntry(hash=second.hash)))
    limits = LimitsSettings(rate_limit=RateLimitSettings(per_second=1, burst=2))
    server = await start_server(
        with_server(make_config(), auth=auth, limits=limits), with_scorer=KeyedScorer(), wait_completion=False
    )
    request = pb.RouteRequest(messages=user("hi"))
    as_first = (("authorization", f"Bearer {first.key}"),)
    for _ in range(2):
        await server.stub.Route(request, metadata=as_first)
    limited = await status_of(server.stub.Route(request, metadata=as_first))
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_ms = int(dict(limited.trailing_metadata() or ())[RETRY_AFTER_KEY])
    assert 0 < retry_ms <= 1000
    # The same wait as the standard rich error detail, as any gRPC client library decodes it.
    status = rpc_status.from_call(limited)
    assert status is not None and status.code == code_pb2.RESOURCE_EXHAUSTED
    (detail,) = status.details
    retry_info = error_details_pb2.RetryInfo()
    assert detail.Unpack(retry_info)
    assert retry_info.retry_delay.ToMilliseconds() == retry_ms
    await server.stub.Route(request, metadata=(("authorization", f"Bearer {second.key}"),))
    await asyncio.sleep(retry_ms / 1000)
    await server.stub.Route(request, metadata=as_first)


async def test_a_call_without_a_deadline_gets_the_default_one(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.delay_s = 5.0
    backends.small.chunk_delay_s = 5.0
    limits = LimitsSettings(default_deadline_s=0.5)
    server = await start_server(
        with_server(make_config(fallback=False), limits=limits), with_scorer=KeyedScorer()
    )
    request = pb.CompleteRequest(messages=user("hi"))
    for call in (lambda: server.stub.Complete(request), lambda: server.stub.CompleteStream(request).read()):
        started = time.monotonic()
        expired = await status_of(call())
        assert expired.code() == grpc.StatusCode.DEADLINE_EXCEEDED, expired
        assert 0.4 < time.monotonic() - started < 1.5
    # A client deadline wins over the default.
    backends.small.delay_s = backends.small.chunk_delay_s = 0.0
    response = await server.stub.Complete(request, timeout=5)
    assert response.text == "small tier answer"
