"""Per-provider LiteLLM arguments for structured output, tools and penalties (LiteLLM 1.82.6's mapping,
with workarounds where it maps wrongly; each is named at the provider's function below)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from router.domain import ToolCall
from router.errors import InvalidRequestError
from router.structured._spec import ChatTurn, StructuredSpec

OPENAI_WIRE = ("openai", "hosted_vllm")  # OpenAI's request format on the wire, sent as given


class UnsupportedFeatureError(InvalidRequestError):
    """The tier's provider cannot do what the request asks (e.g. tools on Ollama's /api/generate)."""

    def __init__(self, model: str, feature: str, hint: str):
        super().__init__(f"{model} cannot {feature}: {hint}")
        self.model = model
        self.feature = feature


@dataclass(frozen=True)
class ProviderRequest:
    """What one tier's `litellm.acompletion(model=..., messages=messages, **kwargs)` needs for this request.

    `kwargs` holds only the structured and penalty arguments (merge them over the tier's own; an
    `extra_body` here must be merged with the tier's, key by key). `notes` names each adjustment made for
    the provider, for the debug log (e.g. "frequency_penalty not sent: ...")."""

    messages: list[dict[str, Any]]
    kwargs: dict[str, Any]
    notes: tuple[str, ...] = field(default=())
    # The provider cannot force a tool call, so it was asked for as JSON content under a grammar
    # ({"name": one of the tools, "arguments": its parameters}); `call_from_content` turns the reply back.
    call_in_content: bool = False


def provider_of(model: str) -> str:
    """LiteLLM's provider prefix of a model id ("ollama_chat/llama3:8b" -> "ollama_chat"), else "openai"."""
    prefix, sep, _ = model.partition("/")
    return prefix if sep else "openai"


def litellm_request(
    model: str,
    spec: StructuredSpec,
    messages: Sequence[ChatTurn],
    *,
    embedded: bool = False,
    seed: int | None = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
) -> ProviderRequest:
    """The LiteLLM messages and kwargs for `model` (a LiteLLM model id). `embedded`: the tier is the
    router's own llama.cpp child (`hosted_vllm/<alias>` on loopback), whose server differs from vLLM.
    Raises UnsupportedFeatureError when the provider cannot honour the request's tools."""
    provider = provider_of(model)
    builder = _embedded if embedded else _BUILDERS.get(provider, _litellm_translates)
    request = _Request(model, spec, messages)
    request.sampling(seed=seed, presence_penalty=presence_penalty, frequency_penalty=frequency_penalty)
    builder(request)
    return ProviderRequest(request.messages, request.kwargs, tuple(request.notes), request.call_in_content)


FORCED_CALL_ID = "call_0"


def call_from_content(text: str) -> ToolCall | None:
    """The tool call a `call_in_content` reply holds: {"name": ..., "arguments": {...}} as JSON text; None
    when it is not one (the answer check then reports the missing call, and the fallback applies)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        return None
    return ToolCall(FORCED_CALL_ID, value["name"], json.dumps(arguments, ensure_ascii=False))


class _Request:
    """The request being built for one provider: OpenAI-format by default, edited by the provider."""

    def __init__(self, model: str, spec: StructuredSpec, messages: Sequence[ChatTurn]):
        self.model = model
        self.spec = spec
        self.turns = messages
        self.messages = [_openai_message(message) for message in messages]
        self.kwargs: dict[str, Any] = {}
        self.notes: list[str] = []
        self.call_in_content = False

    def sampling(self, **values: Any) -> None:
        self.kwargs.update({name: value for name, value in values.items() if value is not None})

    def drop(self, name: str, why: str) -> None:
        if self.kwargs.pop(name, None) is not None:
            self.notes.append(f"{name} not sent: {why}")

    def openai_response_format(self) -> None:
        spec = self.spec
        if spec.format_type == "json_object":
            self.kwargs["response_format"] = {"type": "json_object"}
        elif spec.schema is not None:
            json_schema: dict[str, Any] = {"name": spec.schema_name, "schema": copy.deepcopy(spec.schema)}
            if spec.response_format.strict:
                json_schema["strict"] = True
            self.kwargs["response_format"] = {"type": "json_schema", "json_schema": json_schema}

    def tools(self) -> list[dict[str, Any]]:
        """The spec's tools in OpenAI's format (fresh copies: LiteLLM edits schemas in place)."""
        return [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": copy.deepcopy(dict(parameters)),
                },
            }
            for tool, parameters in zip(self.spec.tools, self.spec.tool_parameters, strict=True)
        ]

    def force_call(self, names: Sequence[str], *, json_schema_format: bool) -> None:
        """Ask for one call of the tools `names` as JSON content that a grammar holds to: no tools are
        sent, a system turn lists them, and the reply comes back as a call (`call_from_content`).
        `json_schema_format`: the provider reads OpenAI's json_schema response_format (else llama.cpp's
        {"type": "json_object", "schema": ...})."""
        chosen = [
            (t, p) for t, p in zip(self.spec.tools, self.spec.tool_parameters, strict=True) if t.name in names
        ]
        alternatives = [
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": copy.deepcopy(dict(parameters))},
                "required": ["name", "arguments"],
            }
            for tool, parameters in chosen
        ]
        schema = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
        if json_schema_format:
            self.kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tool_call", "schema": schema},
            }
        else:
            self.kwargs["response_format"] = {"type": "json_object", "schema": schema}
        listing = "\n".join(
            f"- {tool.name}: {tool.description or '(no description)'}; arguments: "
            f"{json.dumps(dict(parameters), ensure_ascii=False)}"
            for tool, parameters in chosen
        )
        instruction = {
            "role": "system",
            "content": 'Call one of these tools. Answer only with JSON: {"name": <tool>, "arguments": '
            "{...}}.\n" + listing,
        }
        self.messages = [*self.messages, instruction]
        body = self.kwargs.get("extra_body")
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            body["messages"] = [*body["messages"], instruction]
        self.call_in_content = True
        self.notes.append(
            f"tool_choice {self.spec.tool_choice!r} forced by a grammar over {len(chosen)} tool(s)"
        )

    def openai_tool_choice(self) -> Any:
        choice = self.spec.tool_choice
        if choice in ("", "auto", "none", "required"):
            return choice or None
        return {"type": "function", "function": {"name": choice}}

    def openai_tools(self, *, in_extra_body: bool) -> None:
        if not self.spec.tools:
            return
        values = {"tools": self.tools(), "tool_choice": self.openai_tool_choice()}
        values = {name: value for name, value in values.items() if value is not None}
        if in_extra_body:
            self.kwargs.setdefault("extra_body", {}).update(values)
        else:
            self.kwargs.update(values)


def _openai(request: _Request) -> None:
    """OpenAI and OpenAI-compatible servers: everything as given. LiteLLM's `drop_params=True` (which the
    router sets) silently drops response_format for the model names "gpt-4" and "gpt-3.5-turbo-16k"
    (llms/openai/chat/gpt_transformation.py, get_supported_openai_params), so what is sent is also listed in
    `allowed_openai_params`, which LiteLLM passes through as is (utils.py, _apply_openai_param_overrides)."""
    request.openai_response_format()
    request.openai_tools(in_extra_body=False)
    allowed = [name for name in ("response_format", "tools", "tool_choice") if name in request.kwargs]
    if allowed:
        request.kwargs["allowed_openai_params"] = allowed


def _hosted_vllm(request: _Request) -> None:
    """vLLM: as OpenAI, but the tools go in `extra_body`. LiteLLM's hosted_vllm mapping
    (llms/hosted_vllm/chat/transformation.py, map_openai_params) deletes every `additionalProperties: false`
    and every key named "strict" from the tools, at any depth (so a parameter named "strict" loses its
    definition), and edits the caller's dicts in place; `extra_body` reaches the body untouched
    (llms/custom_httpx/llm_http_handler.py merges it over the transformed request)."""
    request.openai_response_format()
    request.openai_tools(in_extra_body=True)


def _embedded(request: _Request) -> None:
    """The embedded llama.cpp child (llama-cpp-python 0.3.36's OpenAI-compatible server). Its request
    type accepts response_format {"type": "text" | "json_object", "schema": {...}} only
    (llama_cpp/llama_types.py, ChatCompletionRequestResponseFormat): a "json_schema" format fails its
    validation. With a schema it builds a grammar from it (llama_chat_format.py,
    _grammar_for_response_format -> LlamaGrammar.from_json_schema; it falls back to any-JSON when the
    conversion fails, which the router's answer check catches). Tools are honoured only for a named
    tool_choice (a grammar from that tool's parameters); "required" with one tool is sent as that name,
    with several as a grammar over all of them (`_Request.force_call`): llama.cpp has no "required"."""
    spec = request.spec
    if spec.format_type == "json_object":
        request.kwargs["response_format"] = {"type": "json_object"}
    elif spec.schema is not None:
        request.kwargs["response_format"] = {"type": "json_object", "schema": copy.deepcopy(spec.schema)}
    if not spec.offers_tools:
        return
    choice = spec.tool_choice
    if choice == "required" and len(spec.tools) == 1:
        choice = spec.tools[0].name
        request.notes.append(f"tool_choice 'required' sent as the only tool, {choice!r}")
    if choice == "required":
        request.force_call([tool.name for tool in spec.tools], json_schema_format=False)
        return
    if choice in ("", "auto"):
        request.notes.append(f"tool_choice {choice or 'auto'!r} is not enforced by llama.cpp; only a name is")
        extra: dict[str, Any] = {"tools": request.tools()}
    else:
        extra = {"tools": request.tools(), "tool_choice": {"type": "function", "function": {"name": choice}}}
    request.kwargs.setdefault("extra_body", {}).update(extra)


def _ollama_chat(request: _Request) -> None:
    """Ollama's /api/chat. LiteLLM maps response_format to Ollama's `format` (the schema itself, or "json")
    correctly (llms/ollama/chat/transformation.py, map_openai_params). Worked around:
    - tool_choice is dropped by LiteLLM (Ollama has none): "none" sends no tools; "required" or a name is
      forced with Ollama's `format` grammar instead of tools (`_Request.force_call`: one of the tools, or
      the named one, as JSON content, turned back into a call);
    - frequency_penalty becomes Ollama's multiplicative repeat_penalty (neutral at 1, not 0), so it is not
      sent; presence_penalty is not mapped at all;
    - earlier assistant tool_calls are left out of the request (transform_request builds each Ollama
      message from role, content, images and thinking only), so a conversation with tool turns is sent in
      Ollama's own format through `extra_body`, which replaces the transformed messages."""
    request.openai_response_format()
    request.drop("frequency_penalty", "LiteLLM maps it to Ollama's repeat_penalty, a different scale")
    request.drop("presence_penalty", "LiteLLM does not map it for Ollama")
    spec = request.spec
    if any(turn.tool_calls or turn.role == "tool" for turn in request.turns):
        request.kwargs.setdefault("extra_body", {})["messages"] = _ollama_messages(request.turns)
        request.notes.append("messages sent in Ollama's format, with their tool calls")
    if spec.offers_tools and spec.tool_choice in ("", "auto"):
        request.kwargs["tools"] = request.tools()
    elif spec.offers_tools:
        names = [tool.name for tool in spec.tools if spec.tool_choice in ("required", tool.name)]
        request.force_call(names, json_schema_format=True)


def _ollama_generate(request: _Request) -> None:
    """Ollama's /api/generate (`ollama/`): response_format maps to `format` correctly. It has no tools:
    LiteLLM then writes them into the prompt and sets the process-wide `litellm.add_function_to_prompt`
    (utils.py, get_optional_params), changing every later call, so a tool request is refused instead."""
    request.openai_response_format()
    request.drop("presence_penalty", "LiteLLM does not map it for Ollama")
    if request.spec.offers_tools:
        raise UnsupportedFeatureError(
            request.model, "call tools", "Ollama's /api/generate has none; use an ollama_chat/ model"
        )


def _litellm_translates(request: _Request) -> None:
    """Any other provider (anthropic/, gemini/, ...): OpenAI's format, which LiteLLM translates itself."""
    request.openai_response_format()
    request.openai_tools(in_extra_body=False)


_BUILDERS = {
    "openai": _openai,
    "hosted_vllm": _hosted_vllm,
    "ollama_chat": _ollama_chat,
    "ollama": _ollama_generate,
}


def _openai_message(message: ChatTurn) -> dict[str, Any]:
    result: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        result["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json or "{}"},
            }
            for call in message.tool_calls
        ]
        result["content"] = message.content or None
    if message.tool_call_id:
        result["tool_call_id"] = message.tool_call_id
    if message.name:
        result["name"] = message.name
    return result


def _ollama_messages(messages: Sequence[ChatTurn]) -> list[dict[str, Any]]:
    """Ollama's /api/chat messages: arguments as objects, a tool result's tool as `tool_name`."""
    names = {call.id: call.name for message in messages for call in message.tool_calls}
    result = []
    for message in messages:
        native: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            native["tool_calls"] = [
                {"function": {"name": call.name, "arguments": json.loads(call.arguments_json or "{}")}}
                for call in message.tool_calls
            ]
        if message.role == "tool":
            tool_name = message.name or names.get(message.tool_call_id, "")
            if tool_name:
                native["tool_name"] = tool_name
        result.append(native)
    return result
