"""litellm_request: each provider gets structured output and tools in the form it understands; the
LiteLLM 1.82.6 workarounds are checked on the wire, with real LiteLLM calls to stand-in servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from router.domain import ResponseFormat, Tool, ToolCall
from router.structured import (
    ProviderRequest,
    UnsupportedFeatureError,
    call_from_content,
    litellm_request,
    parse_structured,
    provider_of,
)
from tests.router.standins import StandIn
from tests.router.structured.turns import Turn

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False}
SCHEMA = ResponseFormat(type="json_schema", json_schema=json.dumps(PERSON), schema_name="person", strict=True)
# A parameter literally named "strict", and additionalProperties: false: what LiteLLM's vLLM mapping strips.
SEARCH_PARAMETERS = {
    "type": "object",
    "properties": {"query": {"type": "string"}, "strict": {"type": "boolean"}},
    "required": ["query", "strict"],
    "additionalProperties": False,
}
SEARCH = Tool("search", "Search the docs", json.dumps(SEARCH_PARAMETERS))
TIME = Tool("get_time")
USER = [Turn("user", "hi")]
CALL = ToolCall("call_1", "search", '{"query": "buf", "strict": true}')
TOOL_TURNS = [
    Turn("user", "find buf"),
    Turn("assistant", tool_calls=(CALL,)),
    Turn("tool", "3 hits", tool_call_id="call_1"),
]


def request(
    model: str, spec_args: dict[str, Any], turns: list[Turn] = USER, **options: Any
) -> ProviderRequest:
    return litellm_request(model, parse_structured(**spec_args, messages=turns), turns, **options)


def test_provider_of() -> None:
    assert provider_of("ollama_chat/llama3:8b") == "ollama_chat"
    assert provider_of("gpt-4o") == "openai" and provider_of("hosted_vllm/smollm2-135m") == "hosted_vllm"


def test_plain_requests_add_nothing() -> None:
    for model in ("openai/gpt-4o", "ollama_chat/llama3:8b", "hosted_vllm/m", "ollama/m", "anthropic/claude"):
        assert request(model, {}) == ProviderRequest([{"role": "user", "content": "hi"}], {})


def test_openai_gets_response_format_and_tools_passed_through_drop_params() -> None:
    sent = request("openai/gpt-4", {"response_format": SCHEMA, "tools": [SEARCH], "tool_choice": "search"})
    assert sent.kwargs["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }
    assert sent.kwargs["tools"][0]["function"] == {
        "name": "search",
        "description": "Search the docs",
        "parameters": SEARCH_PARAMETERS,
    }
    assert sent.kwargs["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert sent.kwargs["allowed_openai_params"] == ["response_format", "tools", "tool_choice"]


def test_the_embedded_server_gets_a_schema_in_json_object_mode() -> None:
    sent = request("hosted_vllm/smollm2-135m", {"response_format": SCHEMA}, embedded=True)
    assert sent.kwargs == {"response_format": {"type": "json_object", "schema": PERSON}}
    plain_json = request(
        "hosted_vllm/smollm2-135m", {"response_format": ResponseFormat(type="json_object")}, embedded=True
    )
    assert plain_json.kwargs == {"response_format": {"type": "json_object"}}


def test_the_embedded_server_gets_a_named_tool_choice_for_a_single_required_tool() -> None:
    sent = request("hosted_vllm/m", {"tools": [SEARCH], "tool_choice": "required"}, embedded=True)
    assert sent.kwargs["extra_body"]["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert any("sent as the only tool" in note for note in sent.notes)
    auto = request("hosted_vllm/m", {"tools": [SEARCH, TIME]}, embedded=True)
    assert "tool_choice" not in auto.kwargs["extra_body"] and any("not enforced" in n for n in auto.notes)
    assert (
        "extra_body"
        not in request("hosted_vllm/m", {"tools": [SEARCH], "tool_choice": "none"}, embedded=True).kwargs
    )


def call_schema(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
    }


def test_the_embedded_server_gets_a_grammar_over_the_tools_for_required_with_several() -> None:
    sent = request("hosted_vllm/m", {"tools": [SEARCH, TIME], "tool_choice": "required"}, embedded=True)
    one_of = [
        call_schema("search", SEARCH_PARAMETERS),
        call_schema("get_time", {"type": "object", "properties": {}}),
    ]
    assert sent.kwargs == {"response_format": {"type": "json_object", "schema": {"oneOf": one_of}}}
    assert sent.call_in_content and sent.messages[0] == {"role": "user", "content": "hi"}
    listing = sent.messages[-1]
    assert listing["role"] == "system" and "- search: Search the docs" in listing["content"]
    assert "- get_time:" in listing["content"] and '"arguments"' in listing["content"]
    assert not request("hosted_vllm/m", {"tools": [SEARCH, TIME]}, embedded=True).call_in_content


def test_ollama_chat_forces_required_and_named_tool_choices_with_its_format_grammar() -> None:
    assert "tools" not in request("ollama_chat/m", {"tools": [SEARCH, TIME], "tool_choice": "none"}).kwargs
    auto = request("ollama_chat/m", {"tools": [SEARCH, TIME]})
    assert len(auto.kwargs["tools"]) == 2 and not auto.call_in_content
    named = request("ollama_chat/m", {"tools": [SEARCH, TIME], "tool_choice": "get_time"})
    assert "tools" not in named.kwargs and "tool_choice" not in named.kwargs and named.call_in_content
    assert named.kwargs["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "tool_call",
            "schema": call_schema("get_time", {"type": "object", "properties": {}}),
        },
    }
    required = request("ollama_chat/m", {"tools": [SEARCH, TIME], "tool_choice": "required"}, TOOL_TURNS)
    schema = required.kwargs["response_format"]["json_schema"]["schema"]
    assert [alternative["properties"]["name"] for alternative in schema["oneOf"]] == [
        {"const": "search"},
        {"const": "get_time"},
    ]
    # the conversation goes in Ollama's own format, and the tool listing with it
    assert required.kwargs["extra_body"]["messages"][-1] == required.messages[-1]
    assert required.messages[-1]["role"] == "system"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"name": "search", "arguments": {"query": "buf"}}',
            ToolCall("call_0", "search", '{"query": "buf"}'),
        ),
        ('{"name": "get_time"}', ToolCall("call_0", "get_time", "{}")),
        ('{"name": "søk", "arguments": {"q": "ø"}}', ToolCall("call_0", "søk", '{"q": "ø"}')),
        ("It is 3 pm.", None),
        ('{"arguments": {}}', None),
        ('{"name": "x", "arguments": [1]}', None),
        ('["search"]', None),
    ],
)
def test_a_call_asked_for_as_content_is_read_back_only_when_it_is_one(text: str, expected: Any) -> None:
    assert call_from_content(text) == expected


def test_ollama_does_not_get_litellms_wrong_frequency_penalty() -> None:
    sent = request("ollama_chat/m", {}, seed=7, presence_penalty=0.5, frequency_penalty=0.0)
    assert sent.kwargs == {"seed": 7}
    assert [note.split(":")[0] for note in sent.notes] == [
        "frequency_penalty not sent",
        "presence_penalty not sent",
    ]
    generate = request("ollama/m", {}, presence_penalty=0.5, frequency_penalty=0.5)
    assert generate.kwargs == {"frequency_penalty": 0.5}
    assert request("openai/gpt-4o", {}, seed=1, presence_penalty=0.0).kwargs == {
        "seed": 1,
        "presence_penalty": 0.0,
    }


def test_tools_on_ollama_generate_are_refused() -> None:
    with pytest.raises(
        UnsupportedFeatureError, match="ollama/m cannot call tools: .* use an ollama_chat/ model"
    ):
        request("ollama/m", {"tools": [TIME]})
    assert request("ollama/m", {"tools": [TIME], "tool_choice": "none"}).kwargs == {}


def test_messages_carry_tool_calls_in_openai_format() -> None:
    sent = request("openai/gpt-4o", {"tools": [SEARCH]}, TOOL_TURNS)
    assert sent.messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "search", "arguments": CALL.arguments_json},
            }
        ],
    }
    assert sent.messages[2] == {"role": "tool", "content": "3 hits", "tool_call_id": "call_1"}


def test_the_spec_is_not_shared_with_the_kwargs() -> None:
    spec = parse_structured(SCHEMA, [SEARCH])
    sent = litellm_request("hosted_vllm/m", spec, USER)
    sent.kwargs["response_format"]["json_schema"]["schema"].clear()
    sent.kwargs["extra_body"]["tools"][0]["function"]["parameters"].clear()
    assert spec.schema == PERSON and spec.tool_parameters[0] == SEARCH_PARAMETERS


# --- On the wire: real LiteLLM 1.82.6 calls to stand-in servers that record the request bodies ---


@pytest.fixture
def ollama() -> Iterator[StandIn]:
    standin = StandIn("ollama", reply='{"name": "John"}')
    yield standin
    standin.kill()


@pytest.fixture
def openai_server() -> Iterator[StandIn]:
    standin = StandIn("openai", reply='{"name": "John"}')
    yield standin
    standin.kill()


async def send(model: str, api_base: str, sent: ProviderRequest) -> None:
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    from router.backends.litellm import import_litellm

    litellm = import_litellm()

    if model.startswith("ollama"):  # as router.backends does: no /api/show lookups to localhost:11434
        litellm.register_model({model: {"litellm_provider": model.split("/")[0], "mode": "chat"}})
    await litellm.acompletion(
        model=model,
        api_base=api_base,
        api_key="sk-test",
        messages=sent.messages,
        drop_params=True,
        max_retries=0,
        timeout=10,
        **sent.kwargs,
    )
    await asyncio.sleep(0)  # let the finished call enqueue its callbacks (as LiteLLMBackend.aclose does)
    await GLOBAL_LOGGING_WORKER.clear_queue()  # LiteLLM's logging callbacks, bound to this test's loop
    await GLOBAL_LOGGING_WORKER.stop()


async def test_wire_ollama_chat_gets_format_and_its_own_tool_turns(ollama: StandIn) -> None:
    sent = request(
        "ollama_chat/llama3:8b",
        {"response_format": SCHEMA, "tools": [SEARCH]},
        TOOL_TURNS,
        frequency_penalty=0.0,
    )
    await send("ollama_chat/llama3:8b", ollama.url, sent)
    body = ollama.requests[-1]["body"]
    assert body["format"] == PERSON
    assert body["tools"][0]["function"]["parameters"] == SEARCH_PARAMETERS
    assert body["messages"][1]["tool_calls"] == [
        {"function": {"name": "search", "arguments": {"query": "buf", "strict": True}}}
    ]
    assert body["messages"][2] == {"role": "tool", "content": "3 hits", "tool_name": "search"}
    assert "repeat_penalty" not in body["options"]


async def test_wire_ollama_chat_gets_a_required_call_as_its_format_grammar(ollama: StandIn) -> None:
    sent = request("ollama_chat/llama3:8b", {"tools": [SEARCH, TIME], "tool_choice": "required"})
    await send("ollama_chat/llama3:8b", ollama.url, sent)
    body = ollama.requests[-1]["body"]
    assert "tools" not in body and [a["properties"]["name"] for a in body["format"]["oneOf"]] == [
        {"const": "search"},
        {"const": "get_time"},
    ]
    assert body["messages"][-1]["role"] == "system" and "- search:" in body["messages"][-1]["content"]


async def test_wire_litellm_alone_loses_ollama_tool_calls(ollama: StandIn) -> None:
    """Why the workaround exists: without it, LiteLLM drops the assistant's tool calls."""
    sent = request("ollama_chat/llama3:8b", {"tools": [SEARCH]}, TOOL_TURNS)
    bare = ProviderRequest(sent.messages, {"tools": sent.kwargs["tools"]})
    await send("ollama_chat/llama3:8b", ollama.url, bare)
    assert "tool_calls" not in ollama.requests[-1]["body"]["messages"][1]


async def test_wire_vllm_tools_arrive_unstripped(openai_server: StandIn) -> None:
    sent = request(
        "hosted_vllm/qwen", {"response_format": SCHEMA, "tools": [SEARCH], "tool_choice": "required"}
    )
    await send("hosted_vllm/qwen", openai_server.url, sent)
    body = openai_server.requests[-1]["body"]
    assert body["tools"][0]["function"]["parameters"] == SEARCH_PARAMETERS
    assert body["tool_choice"] == "required"
    assert body["response_format"]["json_schema"]["schema"] == PERSON


async def test_wire_openai_gpt4_keeps_its_response_format(openai_server: StandIn) -> None:
    sent = request("openai/gpt-4", {"response_format": SCHEMA})
    await send("openai/gpt-4", openai_server.url, sent)
    assert openai_server.requests[-1]["body"]["response_format"]["type"] == "json_schema"


async def test_wire_embedded_response_format(openai_server: StandIn) -> None:
    sent = request("hosted_vllm/smollm2-135m", {"response_format": SCHEMA}, embedded=True)
    await send("hosted_vllm/smollm2-135m", openai_server.url, sent)
    assert openai_server.requests[-1]["body"]["response_format"] == {"type": "json_object", "schema": PERSON}


async def test_wire_litellm_alone_drops_gpt4s_response_format(openai_server: StandIn) -> None:
    """Why `allowed_openai_params` is sent: with drop_params, LiteLLM drops it for "gpt-4"."""
    sent = request("openai/gpt-4", {"response_format": SCHEMA})
    bare = ProviderRequest(sent.messages, {"response_format": sent.kwargs["response_format"]})
    await send("openai/gpt-4", openai_server.url, bare)
    assert "response_format" not in openai_server.requests[-1]["body"]
