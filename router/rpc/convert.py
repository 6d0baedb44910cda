"""Proto <-> domain conversions; the only module besides the servicer that knows the generated types."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Literal

from router._proto import router_pb2 as pb
from router.domain import (
    Chunk,
    Completion,
    Decision,
    Feedback,
    GenerationParams,
    Message,
    Request,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from router.errors import InvalidRequestError


def new_request_id() -> str:
    """A fresh request id (32 hex characters) for a client that sent none."""
    return uuid.uuid4().hex


def route_request(message: pb.RouteRequest) -> Request:
    return Request(
        messages=_messages(message.messages),
        request_id=message.request_id or new_request_id(),
        metadata=dict(message.metadata),
    )


def complete_request(message: pb.CompleteRequest) -> Request:
    params = message.params
    response_format = message.response_format
    return Request(
        messages=_messages(message.messages),
        request_id=message.request_id or new_request_id(),
        metadata=dict(message.metadata),
        params=GenerationParams(
            max_tokens=params.max_tokens if params.HasField("max_tokens") else None,
            temperature=params.temperature if params.HasField("temperature") else None,
            top_p=params.top_p if params.HasField("top_p") else None,
            stop=tuple(params.stop),
            seed=params.seed if params.HasField("seed") else None,
            presence_penalty=params.presence_penalty if params.HasField("presence_penalty") else None,
            frequency_penalty=params.frequency_penalty if params.HasField("frequency_penalty") else None,
        ),
        force_tier=message.force_tier,
        response_format=ResponseFormat(
            type=response_format.type or "text",
            json_schema=response_format.json_schema,
            schema_name=response_format.schema_name,
            strict=response_format.strict,
        ),
        tools=tuple(Tool(t.name, t.description, t.parameters_json) for t in message.tools),
        tool_choice=message.tool_choice,
    )


def _messages(messages: Iterable[pb.Message]) -> tuple[Message, ...]:
    return tuple(
        Message(m.role, m.content, _tool_calls(m.tool_calls), tool_call_id=m.tool_call_id, name=m.name)
        for m in messages
    )


def _tool_calls(calls: Iterable[pb.ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(call.id, call.name, call.arguments_json) for call in calls)


def tool_call_messages(calls: Iterable[ToolCall]) -> list[pb.ToolCall]:
    return [pb.ToolCall(id=call.id, name=call.name, arguments_json=call.arguments_json) for call in calls]


def _delta_messages(deltas: Iterable[ToolCallDelta]) -> list[pb.ToolCallDelta]:
    return [
        pb.ToolCallDelta(index=d.index, id=d.id, name=d.name, arguments_delta=d.arguments_delta)
        for d in deltas
    ]


def decision_message(decision: Decision) -> pb.Decision:
    return pb.Decision(
        tier=decision.tier,
        model=decision.model,
        score=decision.score,
        threshold=decision.threshold,
        reason=decision.reason,
        classifier_version=decision.classifier_version,
        mode=decision.mode,
    )


def route_response(request: Request, decision: Decision) -> pb.RouteResponse:
    return pb.RouteResponse(decision=decision_message(decision), request_id=request.request_id)


def usage_message(usage: Usage) -> pb.Usage:
    return pb.Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def complete_response(completion: Completion) -> pb.CompleteResponse:
    return pb.CompleteResponse(
        text=completion.text,
        decision=decision_message(completion.decision),
        model=completion.model,
        usage=usage_message(completion.usage),
        cost_usd=completion.cost_usd,
        fallback=completion.fallback,
        fallback_reason=completion.fallback_reason,
        finish_reason=completion.finish_reason,
        request_id=completion.request_id,
        exemplar_ids=list(completion.exemplar_ids),
        tool_calls=tool_call_messages(completion.tool_calls),
        schema_valid=completion.schema_valid,
        escalated=completion.escalation.escalated,
        escalation_reason=completion.escalation.reason,
        verifier_score=completion.escalation.score,
    )


def chunk_message(chunk: Chunk) -> pb.CompleteChunk:
    message = pb.CompleteChunk(
        delta=chunk.delta,
        fallback=chunk.fallback,
        fallback_reason=chunk.fallback_reason,
        finish_reason=chunk.finish_reason,
        model=chunk.model,
        cost_usd=chunk.cost_usd,
        request_id=chunk.request_id,
        exemplar_ids=list(chunk.exemplar_ids),
        tool_call_deltas=_delta_messages(chunk.tool_call_deltas),
        tool_calls=tool_call_messages(chunk.tool_calls),
        schema_valid=chunk.schema_valid,
    )
    if chunk.usage is not None:  # the last chunk carries the cascade's verdict
        message.escalated = chunk.escalation.escalated
        message.escalation_reason = chunk.escalation.reason
        message.verifier_score = chunk.escalation.score
    if chunk.decision is not None:
        message.decision.CopyFrom(decision_message(chunk.decision))
    if chunk.usage is not None:
        message.usage.CopyFrom(usage_message(chunk.usage))
    return message


def feedback_request(message: pb.FeedbackRequest) -> Feedback:
    """Validate and convert a FeedbackRequest; InvalidRequestError says what is wrong."""
    if not message.request_id:
        raise InvalidRequestError("request_id is empty: send the request_id of the answer being rated")
    if message.rating == pb.GOOD:
        rating: Literal["GOOD", "BAD"] = "GOOD"
    elif message.rating == pb.BAD:
        rating = "BAD"
    else:
        raise InvalidRequestError("rating must be GOOD or BAD")
    if not 0.0 <= message.score <= 1.0:
        raise InvalidRequestError(f"score is {message.score:g}; expected a value in [0, 1] (0: none)")
    return Feedback(
        request_id=message.request_id,
        rating=rating,
        score=message.score or None,  # proto3 has no presence: 0 means "not given"
        comment=message.comment,
    )
