"""Building Router requests from plain Python values, and parsing answers into pydantic models."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from router._proto import router_pb2 as pb
from router.client._errors import AnswerValidationError

Model = TypeVar("Model", bound=BaseModel)
# A prompt: one user message, or chat turns as {"role": ..., "content": ...} dicts or pb.Message.
Messages = str | Sequence[Mapping[str, Any] | pb.Message]
PARAM_NAMES = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


def messages_of(messages: Messages) -> list[pb.Message]:
    """pb.Message turns; a dict may hold role, content, tool_calls (dicts), tool_call_id and name."""
    if isinstance(messages, str):
        return [pb.Message(role="user", content=messages)]
    turns = []
    for message in messages:
        if isinstance(message, pb.Message):
            turns.append(message)
            continue
        fields = dict(message)
        calls = [pb.ToolCall(**call) for call in fields.pop("tool_calls", ())]
        turns.append(pb.Message(tool_calls=calls, **fields))
    return turns


def response_format_for(model: type[BaseModel], *, strict: bool = False) -> pb.ResponseFormat:
    """A "json_schema" ResponseFormat holding the model's JSON schema, named after the model."""
    return pb.ResponseFormat(
        type="json_schema",
        json_schema=json.dumps(model.model_json_schema()),
        schema_name=model.__name__[:64],
        strict=strict,
    )


def tool(
    name: str, description: str = "", parameters: Mapping[str, Any] | type[BaseModel] | None = None
) -> pb.Tool:
    """A Tool; `parameters` is a JSON Schema object, or a pydantic model whose schema it is."""
    if isinstance(parameters, type) and issubclass(parameters, BaseModel):
        parameters = parameters.model_json_schema()
    parameters_json = json.dumps(dict(parameters)) if parameters is not None else ""
    return pb.Tool(name=name, description=description, parameters_json=parameters_json)


def parse_answer(response: pb.CompleteResponse, model: type[Model]) -> Model:
    """The answer validated into `model`; AnswerValidationError (with the response) when it does not fit."""
    try:
        return model.model_validate_json(response.text)
    except ValidationError as exc:
        raise AnswerValidationError(
            f"the answer does not fit {model.__name__}: {exc.error_count()} error(s), first: "
            f"{exc.errors()[0]['msg']}",
            response,
            exc.errors(),
        ) from exc


def complete_request(
    messages: Messages,
    *,
    response_model: type[BaseModel] | None,
    response_format: pb.ResponseFormat | None,
    tools: Sequence[pb.Tool],
    tool_choice: str,
    metadata: Mapping[str, str] | None,
    request_id: str,
    force_tier: str,
    params: Mapping[str, Any],
) -> pb.CompleteRequest:
    if response_model is not None:
        if response_format is not None:
            raise ValueError("give response_model or response_format, not both")
        response_format = response_format_for(response_model)
    unknown = set(params) - set(PARAM_NAMES)
    if unknown:
        raise TypeError(f"unknown generation parameters: {', '.join(sorted(unknown))}")
    generation = pb.GenerationParams(**{name: value for name, value in params.items() if value is not None})
    return pb.CompleteRequest(
        messages=messages_of(messages),
        metadata=dict(metadata or {}),
        request_id=request_id,
        params=generation,
        force_tier=force_tier,
        response_format=response_format,
        tools=list(tools),
        tool_choice=tool_choice,
    )


def route_request(messages: Messages, metadata: Mapping[str, str] | None, request_id: str) -> pb.RouteRequest:
    return pb.RouteRequest(
        messages=messages_of(messages), metadata=dict(metadata or {}), request_id=request_id
    )


RATINGS = {"GOOD": pb.GOOD, "BAD": pb.BAD}


def feedback_request(request_id: str, rating: str, score: float | None, comment: str) -> pb.FeedbackRequest:
    if rating not in RATINGS:
        raise ValueError(f"rating is {rating!r}; expected 'GOOD' or 'BAD'")
    return pb.FeedbackRequest(
        request_id=request_id, rating=RATINGS[rating], score=score or 0.0, comment=comment
    )
