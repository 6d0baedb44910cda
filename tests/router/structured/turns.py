"""A chat turn with tool fields, as router.domain.Message will carry them once the integration lands."""

from __future__ import annotations

from dataclasses import dataclass

from router.domain import ToolCall


@dataclass(frozen=True)
class Turn:
    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""
