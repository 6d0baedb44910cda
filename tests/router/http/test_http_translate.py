"""OpenAI JSON <-> the contract's messages (router.rpc.http._openai): every field, both ways, pure."""

from __future__ import annotations

import json

import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.errors import InvalidRequestError, NotFoundError
from router.rpc.http import _openai as openai

CONFIG = RouterConfig.model_validate(
    {"tiers": {"small": {"model": "ollama_chat/a"}, "large": {"model": "openai/b"}}}
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather now", "parameters": SCHEMA, "strict": True},
}


def request(**fields: object) -> pb.CompleteRequest:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields}
    parsed = openai.parse(openai.ChatCompletionBody, json.dumps(body).encode())
    return openai.complete_request(parsed, CONFIG, "rid-1")


def test_every_contract_field_is_filled() -> None:
    history = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Oslo?"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
            "refusal": None,
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny", "name": "get_weather"},
    ]
    message = request(
        messages=history,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
        },
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=9,
        max_completion_tokens=12,
        temperature=0.5,
        top_p=0.9,
        stop="END",
        seed=7,
        presence_penalty=0.0,
        frequency_penalty=-1.5,
        user="alice",
        metadata={"tenant": "acme"},
        n=1,
    )
    assert message.request_id == "rid-1" and dict(message.metadata) == {"tenant": "acme", "user": "alice"}
    assert [(m.role, m.content) for m in message.messages] == [
        ("system", "Be brief."), ("user", "Weather in Oslo?"), ("assistant", ""), ("tool", "sunny"),
    ]  # fmt: skip
    assert message.messages[2].tool_calls == [pb.ToolCall(id="c1", name="get_weather", arguments_json="{}")]
    assert (message.messages[3].tool_call_id, message.messages[3].name) == ("c1", "get_weather")
    assert message.response_format.type == "json_schema" and message.response_format.schema_name == "answer"
    assert json.loads(message.response_format.json_schema) == SCHEMA and message.response_format.strict
    assert [(t.name, t.description, json.loads(t.parameters_json)) for t in message.tools] == [
        ("get_weather", "Weather now", SCHEMA)
    ]
    assert message.tool_choice == "get_weather"
    params = message.params
    assert params.max_tokens == 12  # max_completion_tokens wins over the deprecated max_tokens
    assert (params.temperature, params.top_p, list(params.stop), params.seed) == (0.5, 0.9, ["END"], 7)
    assert params.HasField("presence_penalty") and params.presence_penalty == 0.0  # an explicit 0 is kept
    assert params.frequency_penalty == -1.5


def test_unset_fields_stay_unset() -> None:
    message = request()
    assert not message.params.HasField("max_tokens") and not message.params.HasField("seed")
    assert not message.HasField("response_format") and not message.tools and message.tool_choice == ""


@pytest.mark.parametrize(
    ("model", "tier"), [("auto", ""), ("small", "small"), ("large", "large"), ("openai/b", "large")]
)
def test_model_names_select_the_tier(model: str, tier: str) -> None:
    assert openai.force_tier(model, CONFIG) == tier


def test_an_unknown_model_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="auto, small, large, ollama_chat/a, openai/b"):
        openai.force_tier("gpt-5", CONFIG)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "schema: required"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"logprobs": True}, "logprobs"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "input_audio",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused(fields: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidRequestError, match=words):
        request(**fields)


def test_tool_calls_usage_and_finish_reason_come_back() -> None:
    response = pb.CompleteResponse(
        text="",
        model="openai/b",
        request_id="rid-2",
        finish_reason="tool_calls",
        usage=pb.Usage(prompt_tokens=3, completion_tokens=4),
        tool_calls=[pb.ToolCall(id="c9", name="get_weather", arguments_json='{"city":"Oslo"}')],
    )
    shaped = openai.completion_json(response, created=1)
    choice = shaped["choices"][0]
    assert (shaped["id"], shaped["model"], choice["finish_reason"]) == ("rid-2", "openai/b", "tool_calls")
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "c9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    ]
    assert shaped["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_streamed_tool_call_pieces_become_openai_deltas() -> None:
    shaper = openai.ChunkShaper(created=1, include_usage=True)
    first = pb.CompleteChunk(request_id="rid-3", model="openai/b", decision=pb.Decision(tier="large"))
    piece = pb.CompleteChunk(tool_call_deltas=[pb.ToolCallDelta(index=0, id="c1", name="get_weather")])
    more = pb.CompleteChunk(tool_call_deltas=[pb.ToolCallDelta(index=0, arguments_delta='{"city"')])
    last = pb.CompleteChunk(finish_reason="tool_calls", usage=pb.Usage(prompt_tokens=1, completion_tokens=2))
    events = [event for chunk in (first, piece, more, last) for event in shaper.events(chunk)]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[1]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather"}}
    ]
    assert events[2]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "function": {"arguments": '{"city"'}}
    ]
    assert events[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[4]["choices"] == [] and events[4]["usage"]["total_tokens"] == 3
    assert {event["id"] for event in events} == {"rid-3"}
