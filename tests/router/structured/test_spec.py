"""parse_structured: every malformed response format, tool, tool choice or tool turn is named."""

from __future__ import annotations

import json

import pytest

from router.domain import ResponseFormat, Tool, ToolCall
from router.errors import InvalidRequestError
from router.structured import StructuredSpec, parse_structured
from tests.router.structured.turns import Turn

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
WEATHER = Tool("get_weather", "Current weather", json.dumps({"type": "object", "properties": {"city": {}}}))


def schema_format(schema: object, **fields: object) -> ResponseFormat:
    return ResponseFormat(type="json_schema", json_schema=json.dumps(schema), **fields)  # type: ignore[arg-type]


def test_a_valid_schema_request_is_parsed() -> None:
    spec = parse_structured(schema_format(PERSON, schema_name="person"))
    assert spec.schema == PERSON and spec.schema_name == "person" and spec.wants_json
    assert spec.format_type == "json_schema" and not spec.offers_tools


def test_defaults() -> None:
    spec = parse_structured()
    assert spec == StructuredSpec() and spec.format_type == "text" and not spec.wants_json
    assert parse_structured(schema_format(PERSON)).schema_name == "response"
    assert parse_structured(ResponseFormat(type="json_object")).schema is None


@pytest.mark.parametrize(
    ("response_format", "message"),
    [
        (ResponseFormat(type="xml"), "response_format.type is 'xml'; expected one of 'text'"),
        (ResponseFormat(type="json_schema"), "json_schema is empty"),
        (ResponseFormat(type="json_schema", json_schema="{not json"), "json_schema is not JSON: Expecting"),
        (
            ResponseFormat(type="json_schema", json_schema="[1, 2]"),
            "is an array; expected a JSON Schema object",
        ),
        (schema_format({"type": "strin"}), "not a valid JSON Schema (Draft 2020-12): 'strin' is not valid"),
        (schema_format({"type": "object", "required": "name"}), "at ['required']"),
        (schema_format({"properties": {"age": {"minimum": "3"}}}), "at ['properties']['age']['minimum']"),
        (schema_format(PERSON, schema_name="has space"), "schema_name 'has space' must be 1-64 characters"),
        (ResponseFormat(type="text", json_schema="{}"), "json_schema is set but type is 'text'"),
    ],
)
def test_a_bad_response_format_is_named(response_format: ResponseFormat, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_structured(response_format)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ([Tool("get weather")], "tools[0].name 'get weather' must be 1-64 characters"),
        ([Tool("a" * 65)], "must be 1-64 characters"),
        ([WEATHER, WEATHER], "tools[1].name 'get_weather' is given twice"),
        (
            [Tool("f", parameters_json='"object"')],
            "tools[0].parameters_json is a string; expected a JSON Schema",
        ),
        ([Tool("f", parameters_json="{")], "tools[0].parameters_json is not JSON"),
        (
            [Tool("f", parameters_json='{"type": "array"}')],
            "has type 'array'; a tool's arguments are an object",
        ),
        ([Tool("f", parameters_json='{"type": 5}')], "tools[0].parameters_json is not a valid JSON Schema"),
        ([Tool(f"t{i}") for i in range(129)], "129 tools, over the limit of 128"),
    ],
)
def test_a_bad_tool_is_named(tools: list[Tool], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_structured(tools=tools)
    assert message in str(caught.value)


def test_a_tool_without_parameters_takes_none() -> None:
    spec = parse_structured(tools=[Tool("now")])
    assert spec.parameters_of("now") == {"type": "object", "properties": {}}
    assert spec.parameters_of("later") is None and spec.offers_tools


@pytest.mark.parametrize("choice", ["", "auto", "none", "required", "get_weather"])
def test_tool_choices_that_fit(choice: str) -> None:
    assert parse_structured(tools=[WEATHER], tool_choice=choice).tool_choice == choice


def test_tool_choice_none_offers_no_tools() -> None:
    assert not parse_structured(tools=[WEATHER], tool_choice="none").offers_tools


@pytest.mark.parametrize(
    ("tools", "choice", "message"),
    [
        ([WEATHER], "get_time", "tool_choice 'get_time' names no given tool; expected '', 'auto', 'none'"),
        ([], "get_weather", "tool_choice is 'get_weather' but the request gives no tools"),
        ([], "required", "tool_choice is 'required' but the request gives no tools"),
    ],
)
def test_a_tool_choice_that_names_no_tool_is_refused(tools: list[Tool], choice: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_structured(tools=tools, tool_choice=choice)
    assert message in str(caught.value)


CALL = ToolCall("call_1", "get_weather", '{"city": "Oslo"}')


def test_a_conversation_with_tool_turns_is_accepted() -> None:
    turns = [
        Turn("user", "weather?"),
        Turn("assistant", tool_calls=(CALL,)),
        Turn("tool", "12C", tool_call_id="call_1"),
    ]
    assert parse_structured(tools=[WEATHER], messages=turns).tools == (WEATHER,)


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([Turn("tool", "12C")], "messages[0] has role 'tool' but no tool_call_id"),
        (
            [Turn("tool", "12C", tool_call_id="call_9")],
            "messages[0].tool_call_id 'call_9' matches no earlier",
        ),
        ([Turn("user", tool_calls=(CALL,))], "messages[0] has tool_calls but role 'user'"),
        ([Turn("assistant", tool_calls=(ToolCall("", "f", "{}"),))], "messages[0].tool_calls[0].id is empty"),
        ([Turn("assistant", tool_calls=(ToolCall("c", "", "{}"),))], "tool_calls[0].name is empty"),
        ([Turn("assistant", tool_calls=(ToolCall("c", "f", "[]"),))], "arguments_json is an array"),
        ([Turn("assistant", tool_calls=(ToolCall("c", "f", "{"),))], "arguments_json is not JSON"),
    ],
)
def test_a_bad_tool_turn_is_named(turns: list[Turn], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_structured(messages=turns)
    assert message in str(caught.value)
