"""Which messages count as social turns: greetings, thanks, farewells and praise only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifier import social
from classifier.social import CONTINUATION_MAX_WORDS, MAX_WORDS, is_continuation, is_social_turn

SOCIAL = [
    "thanks!",
    "Thanks!",
    "thank you so much for your help.",
    "hi",
    "Hello there 👋",
    "bye!",
    "good morning",
    "thanks! that helped",
    "Great, thanks!",
    "how are you?",
    "Thx!!",
    "cheers mate",
    "Perfect, thank you again!",
    "That’s exactly what I needed, thanks",
    "merci",
    "ok thanks",
    "Okay, thank you!",
]
NOT_SOCIAL = [
    "",
    "!!!",
    "ok",
    "yes",
    "continue",
    "go on",
    "wow",  # a filler alone
    "thanks, now write the tests",
    "hi, can you help me with my taxes?",
    "Thanks! Can you also explain why?",
    "hello world in rust",
    "great, next step please",
    "nice try, that is wrong",
    "thanks 2",
    "What is 2+2?",
]


@pytest.mark.parametrize("text", SOCIAL)
def test_greetings_thanks_and_farewells_are_social(text: str) -> None:
    assert is_social_turn(text)


@pytest.mark.parametrize("text", NOT_SOCIAL)
def test_tasks_acknowledgements_and_mixed_messages_are_not(text: str) -> None:
    assert not is_social_turn(text)


def test_a_long_run_of_social_words_is_not_a_social_turn() -> None:
    assert is_social_turn(" ".join(["thanks"] * MAX_WORDS))
    assert not is_social_turn(" ".join(["thanks"] * (MAX_WORDS + 1)))


@given(task=st.text(alphabet=st.characters(categories=["Ll"]), min_size=4, max_size=20))
def test_adding_an_unknown_word_makes_it_a_task(task: str) -> None:
    if social._SOCIAL.fullmatch(task) is None:  # the word is neither a social phrase nor a filler
        assert not is_social_turn(f"thanks, {task}")


CONTINUATIONS = [
    "continue",
    "Continue.",
    "go on",
    "ok",
    "yes",
    "Yes, do it",
    "ok, next",
    "keep going please",
    "please continue from where you left off",
    "sure, go ahead",
    "more",
    "weiter",
    "and then?",
]
NOT_CONTINUATIONS = [
    "",
    "...",
    "thanks!",
    "ok thanks",
    "continue the story with a dragon",
    "why?",
    "yes but in Rust",
    "next, write the tests",
    "more detail on step 2",
    "no",
    "stop",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, True) for text in CONTINUATIONS] + [(text, False) for text in NOT_CONTINUATIONS],
)
def test_requests_to_go_on_are_continuations_and_nothing_else_is(text: str, expected: bool) -> None:
    assert is_continuation(text) is expected
    assert not (expected and is_social_turn(text))  # a continuation is never also a social turn


def test_a_long_text_is_rejected_before_it_is_normalised() -> None:
    padded = "thanks" + "!" * social.MAX_CHARS  # one word, but longer than any social turn
    assert not is_social_turn(padded) and not is_continuation("continue" + "." * social.MAX_CHARS)
    assert is_social_turn("thanks" + "!" * (social.MAX_CHARS - 6))


def test_a_long_run_of_go_on_words_is_not_a_continuation() -> None:
    assert is_continuation(" ".join(["continue"] * CONTINUATION_MAX_WORDS))
    assert not is_continuation(" ".join(["continue"] * (CONTINUATION_MAX_WORDS + 1)))
