"""Structured output and tools through the real server and LiteLLM to stand-ins that log what they receive."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.requestlog import open_store
from router.rpc.server import COMPLETION_HEALTH_SERVICE
from tests.router.conftest import Running, StartServer
from tests.router.support import Backends, KeyedScorer, user
from tests.router.waiting import SERVING, health, wait_until

MakeConfig = Callable[..., RouterConfig]
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
PERSON_FORMAT = pb.ResponseFormat(type="json_schema", json_schema=json.dumps(PERSON), schema_name="person")
VALID = '{"name": "John", "age": 35}'
WEATHER = pb.Tool(
    name="get_weather",
    description="The weather in a city",
    parameters_json=json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)


def ask(tier: str = "", **fields: Any) -> pb.CompleteRequest:
    return pb.CompleteRequest(messages=user("Turn this into JSON: John is 35"), force_tier=tier, **fields)


def bodies(backends_side: Any) -> list[dict[str, Any]]:
    return [request["body"] for request in backends_side.requests]


@pytest.fixture
async def small_first(start_server: StartServer, make_config: MakeConfig) -> Running:
    """Every prompt scores 0.2: decided small, fallback on."""
    return await start_server(make_config(threshold=0.5), with_scorer=KeyedScorer(default=0.2))


async def test_a_schema_reaches_an_openai_tier_as_response_format(
    small_first: Running, backends: Backends
) -> None:
    backends.large.reply = VALID
    response = await small_first.stub.Complete(ask("large", response_format=PERSON_FORMAT))
    assert response.schema_valid and json.loads(response.text) == {"name": "John", "age": 35}
    assert response.verifier_score == -1 and not response.escalated
    sent = bodies(backends.large)[-1]["response_format"]
    assert sent == {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}


async def test_a_schema_reaches_an_ollama_tier_as_format(small_first: Running, backends: Backends) -> None:
    backends.small.reply = VALID
    response = await small_first.stub.Complete(ask(response_format=PERSON_FORMAT))
    assert response.decision.tier == "small" and not response.fallback and response.schema_valid
    assert bodies(backends.small)[-1]["format"] == PERSON


async def test_tools_reach_the_tier_and_its_tool_call_comes_back(
    small_first: Running, backends: Backends
) -> None:
    backends.large.tool_calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    request = ask("large", tools=[WEATHER], tool_choice="get_weather")
    response = await small_first.stub.Complete(request)
    sent = bodies(backends.large)[-1]
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_weather"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert response.finish_reason == "tool_calls" and response.schema_valid
    [call] = response.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments_json) == {"city": "Paris"}

    chunks = [chunk async for chunk in small_first.stub.CompleteStream(request)]
    assert "".join(d.arguments_delta for c in chunks for d in c.tool_call_deltas) == '{"city": "Paris"}'
    last = chunks[-1]
    assert [c.name for c in last.tool_calls] == ["get_weather"] and last.schema_valid
    assert last.verifier_score == -1


CLOCK = pb.Tool(name="get_time", description="The time now")
FORCED_CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


async def test_a_required_call_is_forced_on_ollama_and_comes_back_as_a_call(
    small_first: Running, backends: Backends
) -> None:
    backends.small.reply = FORCED_CALL  # what Ollama's format grammar lets the model write
    request = ask(tools=[WEATHER, CLOCK], tool_choice="required")
    response = await small_first.stub.Complete(request)
    assert response.decision.tier == "small" and not response.fallback, response.fallback_reason
    sent = bodies(backends.small)[-1]
    assert "tools" not in sent and len(sent["format"]["oneOf"]) == 2
    [call] = response.tool_calls
    assert (call.name, json.loads(call.arguments_json)) == ("get_weather", {"city": "Paris"})
    assert response.finish_reason == "tool_calls" and response.schema_valid and response.text == ""

    chunks = [chunk async for chunk in small_first.stub.CompleteStream(request)]
    assert "".join(chunk.delta for chunk in chunks) == ""  # the call's JSON is not streamed as text
    assert "".join(d.arguments_delta for c in chunks for d in c.tool_call_deltas) == '{"city": "Paris"}'
    assert [c.name for c in chunks[-1].tool_calls] == ["get_weather"] and chunks[-1].schema_valid
    assert not backends.large.requests


async def test_a_forced_call_that_does_not_parse_falls_back_to_large_with_the_reason(
    small_first: Running, backends: Backends
) -> None:
    backends.small.reply = "It is sunny in Paris."
    backends.large.tool_calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    response = await small_first.stub.Complete(ask(tools=[WEATHER, CLOCK], tool_choice="required"))
    assert response.fallback and "tool_choice is 'required'" in response.fallback_reason
    assert [call.name for call in response.tool_calls] == ["get_weather"] and response.schema_valid
    assert bodies(backends.large)[-1]["tool_choice"] == "required"  # the large tier gets real tools
    # Streamed, the text is held until it is whole, then sent: checked at its end, as a streamed schema is.
    chunks = [
        c async for c in small_first.stub.CompleteStream(ask(tools=[WEATHER, CLOCK], tool_choice="required"))
    ]
    assert "".join(c.delta for c in chunks) == "It is sunny in Paris." and not chunks[-1].tool_calls
    assert not chunks[-1].schema_valid and not chunks[0].fallback


async def test_an_earlier_tool_turn_reaches_ollama_with_its_call(
    small_first: Running, backends: Backends
) -> None:
    call = pb.ToolCall(id="c1", name="get_weather", arguments_json='{"city": "Paris"}')
    messages = [
        *user("Weather in Paris?"),
        pb.Message(role="assistant", tool_calls=[call]),
        pb.Message(role="tool", tool_call_id="c1", content="sunny, 21 C"),
    ]
    response = await small_first.stub.Complete(pb.CompleteRequest(messages=messages, tools=[WEATHER]))
    assert response.decision.tier == "small" and not response.fallback
    sent = bodies(backends.small)[-1]["messages"]
    assert sent[1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert sent[2] == {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"}


async def test_an_invalid_small_answer_is_retried_on_large_with_the_schema_error(
    small_first: Running, backends: Backends
) -> None:
    backends.small.reply = '{"name": "John", "age": "thirty-five"}'
    backends.large.reply = VALID
    response = await small_first.stub.Complete(ask(response_format=PERSON_FORMAT))
    assert response.decision.tier == "small" and response.fallback
    assert response.model == "openai/gpt-4o" and response.text == VALID and response.schema_valid
    assert "failed validation" in response.fallback_reason and "$.age" in response.fallback_reason
    assert "integer" in response.fallback_reason
    assert len(backends.large.requests) == 1


async def test_an_invalid_large_answer_is_returned_as_it_is_with_schema_valid_false(
    small_first: Running, backends: Backends
) -> None:
    backends.large.reply = "Sure! Here is the JSON: " + VALID
    response = await small_first.stub.Complete(ask("large", response_format=PERSON_FORMAT))
    assert response.text == "Sure! Here is the JSON: " + VALID  # never "fixed"
    assert not response.schema_valid and not response.fallback


async def test_with_fallback_off_an_invalid_small_answer_stands(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    server = await start_server(make_config(fallback=False), with_scorer=KeyedScorer(default=0.2))
    backends.small.reply = "not json"
    response = await server.stub.Complete(ask(response_format=pb.ResponseFormat(type="json_object")))
    assert response.text == "not json" and not response.schema_valid and not response.fallback
    assert not backends.large.requests


async def test_a_streamed_schema_answer_is_checked_at_its_end(
    small_first: Running, backends: Backends
) -> None:
    backends.small.reply = "no json here"
    chunks = [chunk async for chunk in small_first.stub.CompleteStream(ask(response_format=PERSON_FORMAT))]
    assert "".join(c.delta for c in chunks) == "no json here"
    assert not chunks[-1].schema_valid and not chunks[0].fallback  # no fallback once a chunk was sent
    backends.small.reply = VALID
    chunks = [chunk async for chunk in small_first.stub.CompleteStream(ask(response_format=PERSON_FORMAT))]
    assert chunks[-1].schema_valid and not any(c.schema_valid for c in chunks[:-1])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"response_format": pb.ResponseFormat(type="json_schema", json_schema='{"type": "x"}')}, "'x'"),
        ({"response_format": pb.ResponseFormat(type="json_schema", json_schema="{oops")}, "not JSON"),
        ({"tools": [pb.Tool(name="f", parameters_json='{"type": "string"}')]}, "tools[0].parameters_json"),
        ({"tools": [WEATHER], "tool_choice": "get_time"}, "get_time"),
        ({"params": pb.GenerationParams(max_tokens=-5)}, "max_tokens"),
        ({"params": pb.GenerationParams(temperature=3)}, "temperature"),
        ({"params": pb.GenerationParams(top_p=0)}, "top_p"),
        ({"params": pb.GenerationParams(stop=["a", "b", "c", "d", "e"])}, "stop"),
    ],
)  # fmt: skip
async def test_a_bad_request_is_invalid_argument_naming_it_and_the_server_stays_serving(
    small_first: Running, backends: Backends, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await small_first.stub.Complete(ask(**fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and named in caught.value.details()
    assert not backends.small.requests and not backends.large.requests
    assert await health(small_first.channel, COMPLETION_HEALTH_SERVICE) == SERVING


async def test_a_tool_turn_without_its_call_id_is_invalid_argument(small_first: Running) -> None:
    messages = [*user("hi"), pb.Message(role="tool", content="42")]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await small_first.stub.Complete(pb.CompleteRequest(messages=messages))
    assert (
        caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tool_call_id" in caught.value.details()
    )


async def test_the_request_log_records_format_schema_validity_and_tool_use(
    small_first: Running, backends: Backends, make_config: MakeConfig
) -> None:
    backends.small.reply = "not json"
    backends.large.reply = VALID
    schema = await small_first.stub.Complete(ask(response_format=PERSON_FORMAT))
    backends.large.tool_calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    tools = await small_first.stub.Complete(ask("large", tools=[WEATHER]))
    plain = await small_first.stub.Complete(ask())
    store = open_store(make_config().log.url)
    try:
        wanted = {schema.request_id, tools.request_id, plain.request_id}
        wait_until(lambda: wanted <= {r.request_id for r in store.iter_records()})
        logged = {record.request_id: record for record in store.iter_records()}
    finally:
        store.close()
    first = logged[schema.request_id]
    assert (first.format_type, first.schema_name, first.schema_valid) == ("json_schema", "person", True)
    assert first.fallback and "failed validation" in (first.fallback_reason or "")
    second = logged[tools.request_id]
    assert (second.tools_offered, second.tool_calls, second.format_type) == (1, ("get_weather",), "text")
    third = logged[plain.request_id]
    assert (third.format_type, third.schema_valid, third.tools_offered) == ("text", None, 0)


async def test_tool_definitions_are_not_scored(start_server: StartServer, make_config: MakeConfig) -> None:
    scorer = KeyedScorer(default=0.2)
    server = await start_server(make_config(), with_scorer=scorer)
    await server.stub.Complete(ask(tools=[WEATHER], response_format=PERSON_FORMAT))
    scored = [text for batch in scorer.batches for text in batch]
    assert scored == ["Turn this into JSON: John is 35"]
