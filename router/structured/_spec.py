"""A request's response format, tools, tool choice and tool turns, validated into one StructuredSpec."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from router.domain import RESPONSE_FORMAT_TYPES, ResponseFormat, Tool, ToolCall
from router.errors import InvalidRequestError

# OpenAI's rule for function and schema names; providers that are laxer accept these too.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_SCHEMA_NAME = "response"
TOOL_CHOICE_MODES = ("", "auto", "none", "required")
MAX_TOOLS = 128  # OpenAI's limit on tools per request
EMPTY_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


class ChatTurn(Protocol):
    """What validation and provider mapping read from a chat message (router.domain.Message, extended)."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def tool_calls(self) -> Sequence[ToolCall]: ...

    @property
    def tool_call_id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class StructuredSpec:
    """The validated shape of a Complete call's answer. `schema` and `tool_parameters` are parsed JSON
    (read-only by convention: router.structured copies them before LiteLLM, which edits schemas in place)."""

    response_format: ResponseFormat = ResponseFormat()
    schema: Mapping[str, Any] | None = None  # set for type "json_schema"
    tools: tuple[Tool, ...] = ()
    tool_parameters: tuple[Mapping[str, Any], ...] = ()  # one per tool, in order
    tool_choice: str = ""

    @property
    def format_type(self) -> str:
        """ "text", "json_object" or "json_schema"."""
        return self.response_format.type or "text"

    @property
    def wants_json(self) -> bool:
        """True when the answer must be JSON (so it is validated)."""
        return self.format_type != "text"

    @property
    def schema_name(self) -> str:
        return self.response_format.schema_name or DEFAULT_SCHEMA_NAME

    @property
    def offers_tools(self) -> bool:
        """True when the model may call a tool (tools given and tool_choice is not "none")."""
        return bool(self.tools) and self.tool_choice != "none"

    def parameters_of(self, tool_name: str) -> Mapping[str, Any] | None:
        """The parsed parameters schema of the named tool, None when no tool has that name."""
        for tool, parameters in zip(self.tools, self.tool_parameters, strict=True):
            if tool.name == tool_name:
                return parameters
        return None


PLAIN = StructuredSpec()


def schema_name_of(response_format: ResponseFormat) -> str | None:
    """The name a json_schema response format goes by (DEFAULT_SCHEMA_NAME when unset); None otherwise.
    What the request log records and what few-shot files a task's exemplars under."""
    if response_format.type != "json_schema":
        return None
    return response_format.schema_name or DEFAULT_SCHEMA_NAME


def parse_structured(
    response_format: ResponseFormat | None = None,
    tools: Sequence[Tool] = (),
    tool_choice: str = "",
    messages: Sequence[ChatTurn] = (),
) -> StructuredSpec:
    """Validate the structured parts of a request; InvalidRequestError names the first problem found."""
    response_format = response_format or ResponseFormat()
    schema = _parse_response_format(response_format)
    parameters = _parse_tools(tools)
    _check_tool_choice(tool_choice, tools)
    check_tool_turns(messages)
    return StructuredSpec(response_format, schema, tuple(tools), parameters, tool_choice)


def check_tool_turns(messages: Sequence[ChatTurn]) -> None:
    """Tool calls and tool results in the conversation are well-formed and refer to each other."""
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.tool_calls and message.role != "assistant":
            raise InvalidRequestError(f"{where} has tool_calls but role {message.role!r}; only assistant")
        for number, call in enumerate(message.tool_calls):
            _check_call(call, f"{where}.tool_calls[{number}]")
            call_ids.add(call.id)
        if message.role != "tool":
            continue
        if not message.tool_call_id:
            raise InvalidRequestError(
                f"{where} has role 'tool' but no tool_call_id: name the call it answers"
            )
        if message.tool_call_id not in call_ids:
            raise InvalidRequestError(
                f"{where}.tool_call_id {message.tool_call_id!r} matches no earlier assistant tool call"
            )


def _check_call(call: ToolCall, where: str) -> None:
    if not call.id:
        raise InvalidRequestError(f"{where}.id is empty")
    if not call.name:
        raise InvalidRequestError(f"{where}.name is empty")
    arguments = _load_json(call.arguments_json or "{}", f"{where}.arguments_json")
    if not isinstance(arguments, dict):
        raise InvalidRequestError(f"{where}.arguments_json is {_kind(arguments)}; expected a JSON object")


def _parse_response_format(response_format: ResponseFormat) -> Mapping[str, Any] | None:
    kind = response_format.type or "text"
    if kind not in RESPONSE_FORMAT_TYPES:
        expected = ", ".join(repr(name) for name in RESPONSE_FORMAT_TYPES)
        raise InvalidRequestError(f"response_format.type is {kind!r}; expected one of {expected}")
    if kind != "json_schema":
        if response_format.json_schema:
            raise InvalidRequestError(
                f"response_format.json_schema is set but type is {kind!r}; use type 'json_schema'"
            )
        return None
    if response_format.schema_name and not NAME_PATTERN.fullmatch(response_format.schema_name):
        raise InvalidRequestError(
            f"response_format.schema_name {response_format.schema_name!r} must be 1-64 characters of "
            "letters, digits, '_' or '-'"
        )
    if not response_format.json_schema.strip():
        raise InvalidRequestError("response_format.type is 'json_schema' but json_schema is empty")
    return check_schema(response_format.json_schema, "response_format.json_schema")


def check_schema(text: str, where: str) -> Mapping[str, Any]:
    """Parse JSON text holding a JSON Schema object (Draft 2020-12); InvalidRequestError names the flaw."""
    schema = _load_json(text, where)
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"{where} is {_kind(schema)}; expected a JSON Schema object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"[{part!r}]" for part in exc.path) or " (top level)"
        raise InvalidRequestError(
            f"{where} is not a valid JSON Schema (Draft 2020-12): {exc.message} at {path}"
        ) from exc
    return schema


def _parse_tools(tools: Sequence[Tool]) -> tuple[Mapping[str, Any], ...]:
    if len(tools) > MAX_TOOLS:
        raise InvalidRequestError(f"{len(tools)} tools, over the limit of {MAX_TOOLS}")
    seen: set[str] = set()
    parameters = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not NAME_PATTERN.fullmatch(tool.name):
            raise InvalidRequestError(
                f"{where}.name {tool.name!r} must be 1-64 characters of letters, digits, '_' or '-'"
            )
        if tool.name in seen:
            raise InvalidRequestError(f"{where}.name {tool.name!r} is given twice")
        seen.add(tool.name)
        if not tool.parameters_json.strip():
            parameters.append(EMPTY_PARAMETERS)
            continue
        schema = check_schema(tool.parameters_json, f"{where}.parameters_json")
        if schema.get("type", "object") != "object":
            raise InvalidRequestError(
                f"{where}.parameters_json has type {schema['type']!r}; a tool's arguments are an object"
            )
        parameters.append(schema)
    return tuple(parameters)


def _check_tool_choice(tool_choice: str, tools: Sequence[Tool]) -> None:
    if tool_choice in ("", "auto", "none"):
        return
    if not tools:
        raise InvalidRequestError(f"tool_choice is {tool_choice!r} but the request gives no tools")
    if tool_choice == "required" or any(tool.name == tool_choice for tool in tools):
        return
    names = ", ".join(repr(tool.name) for tool in tools)
    raise InvalidRequestError(
        f"tool_choice {tool_choice!r} names no given tool; expected '', 'auto', 'none', 'required' or one "
        f"of {names}"
    )


def _load_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"{where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
