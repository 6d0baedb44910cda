"""Bad input, keys, tenants, limits, deadlines, disconnects and secrets at the HTTP door: OpenAI-shaped errors
with the status of the gRPC status table's mirror, and a server that stays healthy."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from router.config import RouterConfig
from router.config.guards import ApiKeyEntry, AuthSettings, LimitsSettings, RateLimitSettings
from router.rpc.auth import create_key
from tests.router.http.conftest import Door, StartDoor
from tests.router.support import Backends, KeyedScorer
from tests.router.waiting import wait_until

EASY = [{"role": "user", "content": "What is the capital of France?"}]
ACME = create_key("acme")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession, door: Door, body: Any, *, key: str | None = None, raw: bytes | None = None
) -> tuple[int, dict[str, Any], Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body).encode()
    async with session.post(door.url + "/v1/chat/completions", data=data, headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


def assert_openai_error(payload: dict[str, Any], error_type: str, *words: str) -> str:
    error = payload["error"]
    assert set(error) >= {"message", "type", "code"} and error["type"] == error_type
    for word in words:
        assert word in error["message"]
    return str(error["message"])


async def assert_still_healthy(session: aiohttp.ClientSession, door: Door, key: str | None = None) -> None:
    async with session.get(door.url + "/readyz") as ready:
        assert ready.status == 200 and (await ready.json())["status"] == "SERVING"
    status, _, payload = await post(session, door, {"model": "auto", "messages": EASY}, key=key)
    assert status == 200 and payload["choices"][0]["message"]["content"]


INVALID = "invalid_request_error"
IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/cat.png"}}]}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": EASY, **fields}


@pytest.mark.parametrize(
    ("body", "status", "error_type", "word"),
    [
        (b'{"model": "auto", "messages": [', 400, INVALID, "not valid JSON"),
        (chat(messages="hi"), 400, INVALID, "messages"),
        (chat(temperature="hot"), 400, INVALID, "temperature"),
        (chat(max_tokens="5"), 400, INVALID, "max_tokens"),  # strict: no coercion of a wrong type
        (chat(model="gpt-5"), 404, "not_found_error", "auto, small, large"),
        (chat(n=2), 400, INVALID, "n is 2"),
        (chat(audio={"voice": "alloy"}), 400, INVALID, "audio"),
        (chat(modalities=["text", "audio"]), 400, INVALID, "modalities"),
        (chat(messages=IMAGE), 400, INVALID, "no tier"),
        (chat(messages=[{"role": "robot", "content": "x"}]), 400, INVALID, "role"),
        (chat(messages=[]), 400, INVALID, ""),  # the pipeline's own check, as on gRPC
    ],
)
async def test_bad_input_gets_an_openai_error_and_the_server_stays_healthy(
    door: Door, session: aiohttp.ClientSession, body: Any, status: int, error_type: str, word: str
) -> None:
    raw = body if isinstance(body, bytes) else None
    got, headers, payload = await post(session, door, body, raw=raw)
    assert got == status
    assert_openai_error(payload, error_type, word)
    assert len(headers["x-rightsize-request-id"]) == 32
    await assert_still_healthy(session, door)


async def test_oversize_body_is_413(
    start_door: StartDoor, make_config: Callable[..., RouterConfig], session: aiohttp.ClientSession
) -> None:
    door = await start_door(make_config(), limits=LimitsSettings(max_message_bytes=4096))
    big = [{"role": "user", "content": "x" * 5000}]
    status, _, payload = await post(session, door, {"model": "auto", "messages": big})
    assert status == 413
    assert_openai_error(payload, "invalid_request_error", "over the limit of 4096 bytes")
    await assert_still_healthy(session, door)


async def test_unknown_path_and_method_are_openai_shaped(door: Door, session: aiohttp.ClientSession) -> None:
    async with session.get(door.url + "/v1/embeddings") as missing:
        assert missing.status == 404
        assert_openai_error(await missing.json(), "not_found_error", "/v1/embeddings")
    async with session.get(door.url + "/v1/chat/completions") as wrong:
        assert wrong.status == 405 and "error" in await wrong.json()


async def test_keys_and_tenants_as_on_grpc(
    start_door: StartDoor, make_config: Callable[..., RouterConfig], session: aiohttp.ClientSession
) -> None:
    other = create_key()
    auth = AuthSettings(api_keys=(ApiKeyEntry(hash=ACME.hash, tenant="acme"), ApiKeyEntry(hash=other.hash)))
    door = await start_door(make_config(), auth=auth, with_scorer=KeyedScorer())
    body = {"model": "auto", "messages": EASY}
    status, _, payload = await post(session, door, body)
    assert status == 401
    assert_openai_error(payload, "authentication_error", "API key missing")
    status, _, payload = await post(session, door, body, key="rsk_not-a-key")
    assert status == 401
    assert_openai_error(payload, "authentication_error", "not valid")
    status, _, payload = await post(session, door, {**body, "metadata": {"tenant": "globex"}}, key=ACME.key)
    assert status == 403
    assert_openai_error(payload, "permission_error", "tenant")
    async with session.get(door.url + "/v1/models") as models:
        assert models.status == 401
    # The key's tenant is written into a request that claims none, as on gRPC.
    status, headers, payload = await post(session, door, body, key=ACME.key)
    assert status == 200
    log = door.running.server.request_log
    await asyncio.to_thread(log.writer.wait_logged, payload["id"], 5)
    record = log.store.get(payload["id"])
    assert record is not None and record.metadata["tenant"] == "acme"
    async with session.get(door.url + "/healthz") as live:  # probes stay open
        assert live.status == 200
    await assert_still_healthy(session, door, key=other.key)


async def test_rate_limit_is_429_with_retry_after_and_shared_with_grpc(
    start_door: StartDoor, make_config: Callable[..., RouterConfig], session: aiohttp.ClientSession
) -> None:
    from router._proto import router_pb2 as pb

    limits = LimitsSettings(rate_limit=RateLimitSettings(per_second=0.01, burst=2))
    door = await start_door(make_config(), limits=limits, with_scorer=KeyedScorer())
    await door.running.stub.Route(pb.RouteRequest(messages=[pb.Message(role="user", content="hi")]))  # 1 of 2
    assert (await post(session, door, {"model": "auto", "messages": EASY}))[0] == 200  # 2 of 2
    status, headers, payload = await post(session, door, {"model": "auto", "messages": EASY})
    assert status == 429
    assert_openai_error(payload, "rate_limit_error", "rate limit exceeded")
    assert int(headers["Retry-After"]) >= 1 and int(headers["retry-after-ms"]) > 1000


async def test_default_deadline_is_504(
    start_door: StartDoor,
    make_config: Callable[..., RouterConfig],
    backends: Backends,
    session: aiohttp.ClientSession,
) -> None:
    backends.small.delay_s = 5
    door = await start_door(
        make_config(fallback=False), limits=LimitsSettings(default_deadline_s=0.5), with_scorer=KeyedScorer()
    )
    status, _, payload = await post(session, door, {"model": "small", "messages": EASY})
    assert status == 504
    assert_openai_error(payload, "timeout_error", "deadline")


async def test_a_client_that_disconnects_cancels_the_backend_call(
    start_door: StartDoor, make_config: Callable[..., RouterConfig], backends: Backends
) -> None:
    backends.small.delay_s = 30
    door = await start_door(make_config(fallback=False), with_scorer=KeyedScorer())
    server = door.running.server
    body = {"model": "small", "messages": EASY}
    headers = {"x-rightsize-request-id": "gone-away-1"}  # a client-chosen id, as CompleteRequest.request_id
    async with aiohttp.ClientSession() as client:
        call = asyncio.ensure_future(
            client.post(door.url + "/v1/chat/completions", json=body, headers=headers)
        )
        await asyncio.to_thread(wait_until, lambda: len(backends.small.requests) == 1)
        call.cancel()  # the client goes away while the tier is still thinking
        with contextlib.suppress(asyncio.CancelledError):
            await call
    log = server.request_log
    await asyncio.to_thread(
        wait_until, lambda: log.writer.wait_logged("gone-away-1", 0) and bool(log.store.get("gone-away-1"))
    )
    record = log.store.get("gone-away-1")
    assert record is not None and record.error is not None and record.error.startswith("cancelled")


async def test_provider_secrets_never_reach_the_client(
    start_door: StartDoor,
    make_config: Callable[..., RouterConfig],
    backends: Backends,
    session: aiohttp.ClientSession,
) -> None:
    backends.large.status, backends.large.echo_key = 401, True  # the provider quotes our key back
    door = await start_door(make_config(), with_scorer=KeyedScorer())
    status, _, payload = await post(session, door, {"model": "large", "messages": EASY})
    assert status == 503
    message = assert_openai_error(payload, "service_unavailable_error", "large tier")
    assert "sk-test" not in message and "sk-test" not in json.dumps(payload)
