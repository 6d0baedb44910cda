"""check_answer and check_tool_calls: valid answers pass, invalid ones fail with the reason."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from router.domain import ResponseFormat, Tool, ToolCall
from router.structured import UNCHECKED, check_answer, check_tool_calls, parse_structured

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
SPEC = parse_structured(ResponseFormat(type="json_schema", json_schema=json.dumps(PERSON)))


@given(name=st.text(max_size=30), age=st.integers(0, 150))
def test_every_fitting_answer_validates(name: str, age: int) -> None:
    verdict = check_answer(SPEC, json.dumps({"name": name, "age": age}))
    assert verdict.checked and verdict.valid and verdict.error == ""


def test_surrounding_whitespace_is_allowed() -> None:
    assert check_answer(SPEC, '\n  {"name": "John", "age": 35}\n').valid


def test_answers_that_do_not_fit_say_where() -> None:
    cases = {
        '{"name": "John"}': "does not match the schema at $: 'age' is a required property",
        '{"name": "John", "age": -1}': "at $.age: -1 is less than the minimum of 0",
        '{"name": "John", "age": 35, "x": 1}': "Additional properties are not allowed ('x' was unexpected)",
        '```json\n{"name": "John", "age": 35}\n```': "not JSON: Expecting value at line 1 column 1",
        "": "the answer is not JSON",
    }
    for text, error in cases.items():
        verdict = check_answer(SPEC, text)
        assert verdict.checked and not verdict.valid
        assert error in verdict.error, (text, verdict.error)


def test_a_long_error_is_cut() -> None:
    verdict = check_answer(SPEC, json.dumps({"name": "a", "age": 1, "x" * 2000: 1}))
    assert not verdict.valid and len(verdict.error) <= 300 and verdict.error.endswith("...")


def test_formats_are_checked() -> None:
    schema = {"type": "object", "properties": {"when": {"type": "string", "format": "date"}}}
    spec = parse_structured(ResponseFormat(type="json_schema", json_schema=json.dumps(schema)))
    assert check_answer(spec, '{"when": "2026-02-03"}').valid
    assert "is not a 'date'" in check_answer(spec, '{"when": "3rd of February"}').error


def test_json_object_mode_wants_an_object() -> None:
    spec = parse_structured(ResponseFormat(type="json_object"))
    assert check_answer(spec, '{"anything": [1, 2]}').valid
    assert "not an object" in check_answer(spec, "[1, 2]").error


def test_free_text_is_not_checked() -> None:
    assert check_answer(parse_structured(), "not json at all") == UNCHECKED


def test_an_unresolvable_reference_is_an_invalid_answer_not_a_crash() -> None:
    schema = {"$ref": "https://example.invalid/person.json"}
    spec = parse_structured(ResponseFormat(type="json_schema", json_schema=json.dumps(schema)))
    verdict = check_answer(spec, "{}")
    assert not verdict.valid and "cannot be resolved" in verdict.error


WEATHER = Tool(
    "get_weather",
    parameters_json=json.dumps(
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    ),
)
TIME = Tool("get_time")


def call(name: str, arguments: str) -> ToolCall:
    return ToolCall("call_1", name, arguments)


def test_tool_calls_that_fit_pass() -> None:
    spec = parse_structured(tools=[WEATHER, TIME], tool_choice="required")
    assert check_tool_calls(spec, [call("get_weather", '{"city": "Oslo"}'), call("get_time", "")]).valid


def test_tool_calls_that_do_not_fit_say_why() -> None:
    spec = parse_structured(tools=[WEATHER, TIME])
    cases = [
        ([call("get_date", "{}")], "tool call 0 names the unknown tool 'get_date'"),
        ([call("get_weather", "{")], "tool call 0 (get_weather): the arguments are not JSON"),
        ([call("get_weather", "{}")], "the arguments does not match the schema at $: 'city' is a required"),
    ]
    for calls, error in cases:
        verdict = check_tool_calls(spec, calls)
        assert not verdict.valid and error in verdict.error, verdict.error


def test_the_tool_choice_is_checked() -> None:
    assert (
        "made no such call"
        in check_tool_calls(parse_structured(tools=[TIME], tool_choice="required"), []).error
    )
    named = parse_structured(tools=[WEATHER, TIME], tool_choice="get_weather")
    assert (
        "'get_weather' but the model made no such call"
        in check_tool_calls(named, [call("get_time", "")]).error
    )
    refused = parse_structured(tools=[TIME], tool_choice="none")
    assert "tool_choice is 'none'" in check_tool_calls(refused, [call("get_time", "")]).error
    assert check_tool_calls(parse_structured(), [call("x", "{}")]).error == (
        "the model called tools but the request gives none"
    )
    assert check_tool_calls(parse_structured(), []) == UNCHECKED
