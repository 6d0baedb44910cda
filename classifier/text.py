"""Which text of a chat gets scored: the last user turn, optionally with a short tail of earlier turns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from classifier.social import is_continuation

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
    `continuations`: a last user turn that only asks to go on ("continue", "yes, do it";
    classifier.social.is_continuation) is scored as the latest earlier user turn that is not one, the task
    it continues (with that turn's context); as itself when there is none.
    """

    context_turns: int = 0
    context_chars: int = 1000
    continuations: bool = False


def scoring_text(messages: Sequence[ChatMessage], options: TextOptions = TextOptions()) -> str:
    """The text to score: the last user message (or, with `options.continuations`, the task a continuation
    continues), plus `options.context_turns` earlier turns.

    System prompts never count: they are constant per application and would swamp the signal.
    Returns "" when there is no user message (callers treat that as invalid input).
    """
    users = [index for index, message in enumerate(messages) if message.role == "user"]
    if not users:
        return ""
    last_user = users[-1]
    if options.continuations and is_continuation(messages[last_user].content):
        last_user = next((i for i in reversed(users) if not is_continuation(messages[i].content)), last_user)
    text = messages[last_user].content
    if options.context_turns <= 0:
        return text
    earlier = [m for m in messages[:last_user] if m.role != "system"][-options.context_turns :]
    if not earlier:
        return text
    context = "\n".join(f"{m.role}: {m.content}" for m in earlier)[-options.context_chars :]
    return f"{context}\nuser: {text}"
