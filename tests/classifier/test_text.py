"""Which text of a conversation is scored."""

import pytest

from classifier.text import TextOptions, Turn, scoring_text

CASES = [
    ([Turn("user", "hello")], TextOptions(), "hello"),
    ([Turn("system", "You are terse."), Turn("user", "hi")], TextOptions(), "hi"),
    ([Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")], TextOptions(), "c"),
    (
        [Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")],
        TextOptions(context_turns=1),
        "assistant: b\nuser: c",
    ),
    (
        [Turn("system", "S"), Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")],
        TextOptions(context_turns=5),
        "user: a\nassistant: b\nuser: c",
    ),
    ([Turn("user", "q"), Turn("assistant", "answer")], TextOptions(), "q"),
    ([Turn("system", "only system")], TextOptions(), ""),
    (
        [Turn("user", "x"), Turn("assistant", "y" * 50), Turn("user", "z")],
        TextOptions(context_turns=1, context_chars=10),
        "y" * 10 + "\nuser: z",
    ),
]


@pytest.mark.parametrize(("messages", "options", "expected"), CASES)
def test_scoring_text(messages: list[Turn], options: TextOptions, expected: str) -> None:
    assert scoring_text(messages, options) == expected
