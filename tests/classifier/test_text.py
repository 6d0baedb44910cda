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


HARD = "Prove that there are infinitely many primes."
GO_ON = TextOptions(continuations=True)
CONTINUED = [
    # a continuation is scored as the task it continues, with that task's own context
    ([Turn("user", HARD), Turn("assistant", "Suppose..."), Turn("user", "continue")], GO_ON, HARD),
    (
        [
            Turn("user", HARD),
            Turn("assistant", "A"),
            Turn("user", "ok"),
            Turn("assistant", "B"),
            Turn("user", "go on"),
        ],
        GO_ON,
        HARD,
    ),
    (
        [
            Turn("user", "a"),
            Turn("assistant", "b"),
            Turn("user", HARD),
            Turn("assistant", "c"),
            Turn("user", "yes, do it"),
        ],
        TextOptions(context_turns=1, continuations=True),
        f"assistant: b\nuser: {HARD}",
    ),
    # nothing to continue, the option off, or a task of its own: the last user turn as it is
    ([Turn("system", "Be brief."), Turn("user", "continue")], GO_ON, "continue"),
    ([Turn("user", HARD), Turn("assistant", "x"), Turn("user", "continue")], TextOptions(), "continue"),
    ([Turn("user", HARD), Turn("assistant", "x"), Turn("user", "now in Rust")], GO_ON, "now in Rust"),
]


@pytest.mark.parametrize(("messages", "options", "expected"), CONTINUED)
def test_a_continuation_is_scored_as_the_task_it_continues(
    messages: list[Turn], options: TextOptions, expected: str
) -> None:
    assert scoring_text(messages, options) == expected
