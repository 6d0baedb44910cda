"""OpenAI chat-completions JSON <-> the gRPC contract's messages (router/_proto), and nothing else.

Requests are parsed strictly (a wrong type is an error, not coerced) into pydantic models, then built into
a pb.CompleteRequest, so the door reaches the pipeline through the same conversion (router.rpc.convert) as
gRPC. A field this router cannot honour is refused; a null is the same as absent (SDKs echo nulls back).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.domain import TIERS
from router.errors import InvalidRequestError, NotFoundError

AUTO_MODEL = "auto"
INT32_MAX = 2**31 - 1
OWNER = "rightsize"


class _Body(BaseModel):
    """Strict JSON; an undeclared key is refused unless its value is null (or empty)."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    @model_validator(mode="after")
    def _no_unsupported(self) -> _Body:
        for name, value in (self.model_extra or {}).items():
            if value not in (None, [], {}, ""):
                raise ValueError(f"{name!r} is not supported by this router")
        return self


class _Function(_Body):
    name: str
    arguments: str = ""


class _ToolCall(_Body):
    id: str
    type: Literal["function"] = "function"
    function: _Function


class _TextPart(_Body):
    type: Literal["text"]
    text: str


class _OtherPart(_Body):
    """Any other content part (image_url, input_audio, file): refused, naming its type."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    type: str


class _Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_TextPart | _OtherPart] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _FunctionSpec(_Body):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # the contract validates every tool call's arguments against `parameters`


class _Tool(_Body):
    type: Literal["function"]
    function: _FunctionSpec


class _ToolName(_Body):
    name: str


class _NamedToolChoice(_Body):
    type: Literal["function"]
    function: _ToolName


class _JsonSchema(_Body):
    name: str = ""
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class _ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None


class _StreamOptions(_Body):
    include_usage: bool | None = None


class ChatCompletionBody(_Body):
    """The body of POST /v1/chat/completions (OpenAI's wire format)."""

    model: str
    messages: list[_Message]
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    response_format: _ResponseFormat | None = None
    tools: list[_Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | _NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    modalities: list[str] | None = None

    @model_validator(mode="after")
    def _supported(self) -> ChatCompletionBody:
        if self.n is not None and self.n != 1:
            raise ValueError(f"n is {self.n}: this router returns one choice (n = 1)")
        if self.logprobs:
            raise ValueError("logprobs are not supported by this router")
        if self.modalities and self.modalities != ["text"]:
            raise ValueError(f"modalities {self.modalities}: this router answers text only")
        if self.parallel_tool_calls is False:
            raise ValueError("parallel_tool_calls false is not supported: the model may call several tools")
        return self


B = TypeVar("B", bound=_Body)


class FeedbackBody(_Body):
    """The body of POST /v1/feedback: the gRPC FeedbackRequest as JSON."""

    request_id: str
    rating: Literal["good", "bad", "GOOD", "BAD"]
    score: float | None = None
    comment: str | None = None


def parse(model: type[B], raw: bytes) -> B:
    """`raw` (JSON bytes) as `model`; InvalidRequestError naming the first problem and where it is."""
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        raise InvalidRequestError(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        return f"the body is not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}"
    # Union members show up in the location as their type names; they only add noise for the client.
    where = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part))
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part.startswith(("list[", "_", "function-")) or part in {"str"})


def force_tier(model: str, config: RouterConfig) -> str:
    """The contract's force_tier for OpenAI's `model`: "" (auto), "small" / "large", or the tier serving
    that model id; NotFoundError for any other name."""
    if model == AUTO_MODEL:
        return ""
    if model in TIERS:
        return model
    for tier in TIERS:
        if config.tiers.get(tier).model == model:
            return tier
    raise NotFoundError(f"model {model!r} is not served here; use one of: {', '.join(model_ids(config))}")


def model_ids(config: RouterConfig) -> list[str]:
    """What GET /v1/models lists: auto, small, large, then each tier's model id."""
    ids = [AUTO_MODEL, *TIERS]
    for tier in TIERS:
        if (model := config.tiers.get(tier).model) not in ids:
            ids.append(model)
    return ids


def complete_request(body: ChatCompletionBody, config: RouterConfig, request_id: str) -> pb.CompleteRequest:
    """The gRPC CompleteRequest that `body` asks for (every contract field the body can set)."""
    metadata = dict(body.metadata or {})
    if body.user:
        metadata.setdefault("user", body.user)
    return pb.CompleteRequest(
        messages=[_message(index, message) for index, message in enumerate(body.messages)],
        metadata=metadata,
        request_id=request_id,
        params=_params(body),
        force_tier=force_tier(body.model, config),
        response_format=_response_format(body.response_format),
        tools=[_tool(tool) for tool in body.tools or ()],
        tool_choice=_tool_choice(body.tool_choice),
    )


def _message(index: int, message: _Message) -> pb.Message:
    return pb.Message(
        role="system" if message.role == "developer" else message.role,
        content=_text(index, message.content),
        tool_calls=[
            pb.ToolCall(id=call.id, name=call.function.name, arguments_json=call.function.arguments)
            for call in message.tool_calls or ()
        ],
        tool_call_id=message.tool_call_id or "",
        name=message.name or "",
    )


def _text(index: int, content: str | list[_TextPart | _OtherPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    for part in content:
        if isinstance(part, _OtherPart):
            kind = "image" if part.type == "image_url" else part.type
            raise InvalidRequestError(
                f"messages.{index}.content: {kind!r} parts are not supported: no tier here takes them"
            )
    return "".join(part.text for part in content if isinstance(part, _TextPart))


def _params(body: ChatCompletionBody) -> pb.GenerationParams:
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or ())
    fields: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "presence_penalty": body.presence_penalty,
        "frequency_penalty": body.frequency_penalty,
    }
    if max_tokens is not None and abs(max_tokens) > INT32_MAX:
        raise InvalidRequestError(f"max_tokens is {max_tokens}: out of range")
    return pb.GenerationParams(
        stop=stop, **{name: value for name, value in fields.items() if value is not None}
    )


def _response_format(response_format: _ResponseFormat | None) -> pb.ResponseFormat | None:
    if response_format is None:
        return None
    schema = response_format.json_schema
    if response_format.type == "json_schema" and (schema is None or schema.schema_ is None):
        raise InvalidRequestError("response_format.json_schema.schema: required with type json_schema")
    return pb.ResponseFormat(
        type=response_format.type,
        json_schema=json.dumps(schema.schema_) if schema is not None and schema.schema_ is not None else "",
        schema_name=schema.name if schema is not None else "",
        strict=bool(schema is not None and schema.strict),
    )


def _tool(tool: _Tool) -> pb.Tool:
    spec = tool.function
    return pb.Tool(
        name=spec.name,
        description=spec.description or "",
        parameters_json=json.dumps(spec.parameters) if spec.parameters is not None else "",
    )


def _tool_choice(choice: str | _NamedToolChoice | None) -> str:
    if choice is None:
        return ""
    return choice if isinstance(choice, str) else choice.function.name


def feedback_request(body: FeedbackBody) -> pb.FeedbackRequest:
    return pb.FeedbackRequest(
        request_id=body.request_id,
        rating=pb.GOOD if body.rating.upper() == "GOOD" else pb.BAD,
        score=body.score or 0.0,
        comment=body.comment or "",
    )


# --- responses ---------------------------------------------------------------------------------------------


def usage_json(usage: pb.Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _tool_calls_json(calls: Any) -> list[dict[str, Any]]:
    return [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json}}
        for call in calls
    ]


def completion_json(response: pb.CompleteResponse, created: int) -> dict[str, Any]:
    """OpenAI's chat.completion object for a CompleteResponse (id = request id, model = who answered)."""
    message: dict[str, Any] = {"role": "assistant", "content": response.text, "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = _tool_calls_json(response.tool_calls)
        message["content"] = response.text or None
    return {
        "id": response.request_id,
        "object": "chat.completion",
        "created": created,
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": response.finish_reason or ("tool_calls" if response.tool_calls else "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage_json(response.usage),
    }


class ChunkShaper:
    """CompleteChunk messages -> OpenAI chat.completion.chunk objects, for one stream."""

    def __init__(self, created: int, include_usage: bool):
        self.created = created
        self.include_usage = include_usage
        self.request_id = ""
        self.model = ""
        self._saw_tool_calls = False

    def events(self, chunk: pb.CompleteChunk) -> list[dict[str, Any]]:
        """The chunk objects to send for `chunk` (the usage-only chunk after the last one, when asked)."""
        if chunk.request_id:
            self.request_id, self.model = chunk.request_id, chunk.model
        delta: dict[str, Any] = {}
        if chunk.HasField("decision"):
            delta["role"] = "assistant"
        if chunk.delta or "role" in delta:
            delta["content"] = chunk.delta
        if chunk.tool_call_deltas:
            self._saw_tool_calls = True
            delta["tool_calls"] = [_tool_call_delta(piece) for piece in chunk.tool_call_deltas]
        last = bool(chunk.finish_reason) or chunk.HasField("usage")
        events = []
        if delta or last:
            finish = chunk.finish_reason or ("tool_calls" if self._saw_tool_calls else "stop")
            choice = {"index": 0, "delta": delta, "finish_reason": finish if last else None, "logprobs": None}
            events.append(self._chunk([choice]))
        if last and self.include_usage:
            events.append({**self._chunk([]), "usage": usage_json(chunk.usage)})
        return events

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def _tool_call_delta(piece: pb.ToolCallDelta) -> dict[str, Any]:
    delta: dict[str, Any] = {"index": piece.index}
    if piece.id:
        delta["id"], delta["type"] = piece.id, "function"
    function = {"name": piece.name} if piece.name else {}
    if piece.arguments_delta:
        function["arguments"] = piece.arguments_delta
    if function:
        delta["function"] = function
    return delta


def models_json(config: RouterConfig) -> dict[str, Any]:
    """GET /v1/models."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": OWNER} for name in model_ids(config)
        ],
    }
