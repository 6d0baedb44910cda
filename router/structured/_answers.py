"""Checks on a model's answer: JSON that fits the requested schema, and tool calls that fit their tools."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

from router.domain import ToolCall
from router.structured._spec import StructuredSpec

MAX_ERROR_CHARS = 300  # the error goes into fallback_reason and the request log; jsonschema quotes values


@dataclass(frozen=True)
class AnswerCheck:
    """The verdict on one answer. `checked` is False when nothing was asked for (free text, no tools);
    `valid` is then False too, which is what CompleteResponse.schema_valid reports. `error` says why not."""

    checked: bool
    valid: bool
    error: str = ""


UNCHECKED = AnswerCheck(checked=False, valid=False)


def check_answer(spec: StructuredSpec, text: str) -> AnswerCheck:
    """Validate `text` against the spec's response format: a JSON object for "json_object", the schema
    (Draft 2020-12, formats checked) for "json_schema". Leading and trailing whitespace is allowed;
    anything else around the JSON (e.g. a Markdown fence) makes it invalid: answers are never "fixed"."""
    if not spec.wants_json:
        return UNCHECKED
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        return _invalid(f"the answer is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if spec.schema is None:
        if isinstance(answer, dict):
            return AnswerCheck(checked=True, valid=True)
        return _invalid(f"the answer is JSON but not an object (it starts with {text.strip()[:20]!r})")
    return _against(spec.schema, answer, "the answer")


def check_tool_calls(spec: StructuredSpec, calls: Sequence[ToolCall]) -> AnswerCheck:
    """Validate the model's tool calls: known tools, JSON-object arguments that fit each tool's parameters,
    and the tool_choice obeyed ("required": some call; a tool's name: a call of that tool; "none": none)."""
    if not spec.tools:
        return _invalid("the model called tools but the request gives none") if calls else UNCHECKED
    if spec.tool_choice == "none" and calls:
        return _invalid("tool_choice is 'none' but the model called a tool")
    if spec.tool_choice not in ("", "auto", "none"):
        wanted = None if spec.tool_choice == "required" else spec.tool_choice
        if not any(wanted in (None, call.name) for call in calls):
            return _invalid(f"tool_choice is {spec.tool_choice!r} but the model made no such call")
    for index, call in enumerate(calls):
        parameters = spec.parameters_of(call.name)
        if parameters is None:
            return _invalid(f"tool call {index} names the unknown tool {call.name!r}")
        try:
            arguments = json.loads(call.arguments_json or "{}")
        except json.JSONDecodeError as exc:
            return _invalid(f"tool call {index} ({call.name}): the arguments are not JSON: {exc.msg}")
        verdict = _against(parameters, arguments, f"tool call {index} ({call.name}): the arguments")
        if not verdict.valid:
            return verdict
    return AnswerCheck(checked=True, valid=True)


def check_reply(spec: StructuredSpec, text: str, calls: Sequence[ToolCall]) -> AnswerCheck:
    """The verdict on a whole reply: its tool calls when it made any (or had to: tool_choice "required" or a
    tool's name), else its text against the response format (UNCHECKED for free text without tools)."""
    if calls or spec.tool_choice not in ("", "auto", "none"):
        return check_tool_calls(spec, calls)
    return check_answer(spec, text)


def _against(schema: Mapping[str, Any], instance: Any, what: str) -> AnswerCheck:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    try:
        error = best_match(validator.iter_errors(instance))
    except Unresolvable as exc:
        return _invalid(f"the schema's reference cannot be resolved: {exc}")
    if error is None:
        return AnswerCheck(checked=True, valid=True)
    return _invalid(f"{what} does not match the schema at {error.json_path}: {error.message}")


def _invalid(error: str) -> AnswerCheck:
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 3] + "..."
    return AnswerCheck(checked=True, valid=False, error=error)
