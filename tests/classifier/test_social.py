"""Which messages count as social turns: greetings, thanks, farewells and praise only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classifier import social
from classifier.social import MAX_WORDS, is_social_turn

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
