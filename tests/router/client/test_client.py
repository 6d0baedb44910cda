"""router.client against a real server on a loopback port, with stand-in backends."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from pydantic import BaseModel

import router.client
from router._proto import router_pb2 as pb
from router.client import (
    AnswerValidationError,
    AsyncRouterClient,
    AuthError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RouterClient,
    UnavailableError,
    response_format_for,
    tool,
)
from router.config.guards import ApiKeyEntry, AuthSettings, LimitsSettings, RateLimitSettings
from router.rpc.auth import create_key
from tests.router.conftest import Running, StartServer
from tests.router.guards.helpers import with_server
from tests.router.support import Backends, KeyedScorer


class Person(BaseModel):
    name: str
    age: int


def test_the_public_api_is_all_of_it() -> None:
    assert router.client.__all__ == sorted(router.client.__all__)
    for name in router.client.__all__:
        assert getattr(router.client, name) is not None
    with pytest.raises(AttributeError):
        router.client.Nothing  # noqa: B018


def test_response_format_for_a_model_carries_its_schema() -> None:
    response_format = response_format_for(Person)
    assert response_format.type == "json_schema" and response_format.schema_name == "Person"
    assert json.loads(response_format.json_schema) == Person.model_json_schema()
    assert json.loads(tool("lookup", "find a person", Person).parameters_json)["required"] == ["name", "age"]


async def test_sync_route_complete_and_feedback(router: Running, backends: Backends) -> None:
    def calls() -> tuple[pb.RouteResponse, pb.CompleteResponse]:
        with RouterClient(router.address, timeout_s=10) as client:
            decision = client.route("hi there", metadata={"tenant": "acme"})
            answer = client.complete("hi there", max_tokens=20, temperature=0.0, seed=3)
            client.feedback(answer.request_id, "GOOD", score=0.9)
            return decision, answer

    decision, answer = await asyncio.to_thread(calls)
    assert decision.decision.tier in ("small", "large") and decision.request_id
    assert answer.text in ("small tier answer", "large tier answer from the cloud")
    body = (backends.small.requests or backends.large.requests)[-1]["body"]
    assert json.dumps(body).count("hi there") == 1


async def test_async_complete_into_a_pydantic_model(router: Running, backends: Backends) -> None:
    backends.small.reply = backends.large.reply = '{"name": "John", "age": 35}'
    async with AsyncRouterClient(router.address, timeout_s=10) as client:
        person = await client.complete("Turn this sentence into JSON: 'John is 35'", response_model=Person)
        assert person == Person(name="John", age=35)
        chunks = [chunk async for chunk in client.stream("hi", force_tier="small")]
    assert "".join(chunk.delta for chunk in chunks) == '{"name": "John", "age": 35}'
    assert chunks[0].decision.tier == "small"


async def test_sync_response_model_round_trip(router: Running, backends: Backends) -> None:
    backends.small.reply = backends.large.reply = '{"name": "Ada", "age": 36}'

    def call() -> Person:
        with RouterClient(router.address, timeout_s=10) as client:
            return client.complete("Ada is 36", response_model=Person)

    assert await asyncio.to_thread(call) == Person(name="Ada", age=36)
    # The model's schema reached the tier that answered, in its provider's own form.
    sent = (backends.small.requests or backends.large.requests)[-1]["body"]
    schema = sent.get("format") or sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"].keys() == Person.model_json_schema()["properties"].keys()


async def test_an_answer_that_does_not_fit_the_model_is_a_typed_error(
    router: Running, backends: Backends
) -> None:
    backends.small.reply = backends.large.reply = '{"name": "John"}'
    async with AsyncRouterClient(router.address, timeout_s=10) as client:
        with pytest.raises(AnswerValidationError, match="does not fit Person: 1 error") as caught:
            await client.complete("John", response_model=Person)
    assert caught.value.response.text == '{"name": "John"}'


async def test_server_errors_are_typed_with_their_status(router: Running) -> None:
    async with AsyncRouterClient(router.address, timeout_s=10) as client:
        with pytest.raises(InvalidRequestError, match="messages is empty") as caught:
            await client.route([])
        assert (
            caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
            and "messages is empty" in caught.value.details
        )
        with pytest.raises(NotFoundError):
            await client.feedback("no-such-request", "BAD")

    def sync_stream_error() -> None:
        with RouterClient(router.address, timeout_s=10) as client:
            list(client.stream([{"role": "system", "content": "only a system turn"}]))

    with pytest.raises(InvalidRequestError, match="no message has role 'user'"):
        await asyncio.to_thread(sync_stream_error)


def test_an_unreachable_router_is_unavailable() -> None:
    with RouterClient("127.0.0.1:1", timeout_s=2) as client, pytest.raises(UnavailableError):
        client.route("hi")


async def test_auth_and_rate_limit_errors_carry_retry_info(
    start_server: StartServer, make_config: object
) -> None:
    key = create_key()
    config = with_server(
        make_config(),  # type: ignore[operator]
        auth=AuthSettings(api_keys=(ApiKeyEntry(hash=key.hash),)),
        limits=LimitsSettings(rate_limit=RateLimitSettings(per_second=1, burst=1)),
    )
    server = await start_server(config, with_scorer=KeyedScorer(), wait_completion=False)
    async with AsyncRouterClient(server.address, api_key="wrong", timeout_s=10) as client:
        with pytest.raises(AuthError):
            await client.route("hi")
    async with AsyncRouterClient(server.address, api_key=key.key, timeout_s=10) as client:
        await client.route("hi")
        with pytest.raises(RateLimitedError) as caught:
            await client.route("hi")
    assert caught.value.retry_after_s is not None and 0 < caught.value.retry_after_s <= 1.0


def test_a_bad_argument_is_refused_before_sending() -> None:
    with RouterClient("127.0.0.1:1") as client:
        with pytest.raises(TypeError, match="unknown generation parameters: max_token"):
            client.complete("hi", max_token=5)
        with pytest.raises(ValueError, match="response_model or response_format, not both"):
            client.complete("hi", response_model=Person, response_format=response_format_for(Person))
        with pytest.raises(ValueError, match="expected 'GOOD' or 'BAD'"):
            client.feedback("id", "OK")
