"""Which text of a chat gets scored: the last user turn, optionally with a short tail of earlier turns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

ROLES = frozenset({"system", "user", "assistant", "tool"})


class ChatMessage(Protocol):
    """Anything with a role and a content string (the router's Message, a dict adapter, ...)."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


@dataclass(frozen=True)
class Turn:
    """A plain chat message."""

    role: str
    content: str


@dataclass(frozen=True)
class TextOptions:
    """How a conversation becomes the one string the classifier scores.

    `context_turns`: how many earlier non-system turns to prepend to the last user turn (0 = none).
    `context_chars`: at most this many characters of those earlier turns are kept (their tail).
    """

    context_turns: int = 0
    context_chars: int = 1000


def scoring_text(messages: Sequence[ChatMessage], options: TextOptions = TextOptions()) -> str:
    """The text to score: the last user message, plus `options.context_turns` earlier turns.

    System prompts never count: they are constant per application and would swamp the signal.
    Returns "" when there is no user message (callers treat that as invalid input).
    """
    last_user = None
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            last_user = index
            break
    if last_user is None:
        return ""
    text = messages[last_user].content
    if options.context_turns <= 0:
        return text
    earlier = [m for m in messages[:last_user] if m.role != "system"][-options.context_turns :]
    if not earlier:
        return text
    context = "\n".join(f"{m.role}: {m.content}" for m in earlier)[-options.context_chars :]
    return f"{context}\nuser: {text}"
