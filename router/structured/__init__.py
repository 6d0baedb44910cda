"""Structured output and tools: validation of the request, of the answer, and per-provider LiteLLM arguments.

Pure logic: no gRPC, no LiteLLM import. Domain types (ResponseFormat, Tool, ToolCall) are in router.domain.
"""

from router.structured._answers import UNCHECKED, AnswerCheck, check_answer, check_reply, check_tool_calls
from router.structured._mapping import (
    FORCED_CALL_ID,
    ProviderRequest,
    UnsupportedFeatureError,
    call_from_content,
    litellm_request,
    provider_of,
)
from router.structured._params import check_generation_params
from router.structured._spec import (
    PLAIN,
    ChatTurn,
    StructuredSpec,
    check_schema,
    check_tool_turns,
    parse_structured,
    schema_name_of,
)

__all__ = [
    "FORCED_CALL_ID",
    "PLAIN",
    "UNCHECKED",
    "AnswerCheck",
    "ChatTurn",
    "ProviderRequest",
    "StructuredSpec",
    "UnsupportedFeatureError",
    "call_from_content",
    "check_answer",
    "check_generation_params",
    "check_reply",
    "check_schema",
    "check_tool_calls",
    "check_tool_turns",
    "litellm_request",
    "parse_structured",
    "provider_of",
    "schema_name_of",
]
