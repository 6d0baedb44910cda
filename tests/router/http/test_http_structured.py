"""Structured output and tools through the HTTP door, end to end to the tier.

These need issue 16's integration (domain, convert, pipeline and backends carrying response_format, tools,
tool turns, seed and penalties); until that is merged they fail at the tier, not at the door (the door's own
translation of every field is tested in test_http_translate.py).
"""

from __future__ import annotations

import json

import openai
from pydantic import BaseModel

from tests.router.http.conftest import Door
from tests.router.support import Backends

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Person(BaseModel):
    name: str
    age: int


def client(door: Door) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=door.base_url, api_key="unused", max_retries=0)


async def test_a_json_schema_reaches_the_tier_and_the_sdk_parses_the_answer(
    door: Door, backends: Backends
) -> None:
    backends.large.reply = '{"name": "John", "age": 35}'
    async with client(door) as sdk:
        completion = await sdk.chat.completions.parse(
            model="large",
            messages=[{"role": "user", "content": "Turn this into JSON: 'John is 35'"}],
            response_format=Person,
        )
    assert completion.choices[0].message.parsed == Person(name="John", age=35)
    sent = backends.large.requests[-1]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Person"
    assert sent["json_schema"]["schema"]["required"] == ["name", "age"]


async def test_json_object_mode_reaches_the_tier(door: Door, backends: Backends) -> None:
    backends.large.reply = '{"ok": true}'
    async with client(door) as sdk:
        completion = await sdk.chat.completions.create(
            model="large",
            messages=[{"role": "user", "content": "Answer in JSON"}],
            response_format={"type": "json_object"},
        )
    assert json.loads(completion.choices[0].message.content or "") == {"ok": True}
    assert backends.large.requests[-1]["body"]["response_format"] == {"type": "json_object"}


async def test_tools_tool_choice_and_tool_turns_reach_the_tier(door: Door, backends: Backends) -> None:
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    async with client(door) as sdk:
        await sdk.chat.completions.create(
            model="large",
            messages=history,
            tools=[WEATHER],
            tool_choice="auto",  # type: ignore[list-item]
        )
    sent = backends.large.requests[-1]["body"]
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_weather"]
    assert sent.get("tool_choice", "auto") == "auto"
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}


async def test_seed_and_penalties_reach_the_tier(door: Door, backends: Backends) -> None:
    async with client(door) as sdk:
        await sdk.chat.completions.create(
            model="large",
            messages=[{"role": "user", "content": "Pick a number"}],
            seed=42,
            presence_penalty=0.5,
            frequency_penalty=0.25,
        )
    sent = backends.large.requests[-1]["body"]
    assert (sent["seed"], sent["presence_penalty"], sent["frequency_penalty"]) == (42, 0.5, 0.25)
