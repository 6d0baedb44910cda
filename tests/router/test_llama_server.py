"""The embedded child's log-probabilities (router/backends/llama_server.py) against llama-cpp-python's own,
on the real SmolLM2-135M: the same tokens, log-probabilities and alternatives, with logits_all off."""

from __future__ import annotations

import math
from typing import Any

import pytest

from router.backends import llama_server
from router.config.embedded import gguf_path, missing_requirement

MISSING = missing_requirement("smollm2-135m")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]
MESSAGES = [
    {
        "role": "user",
        "content": "Classify the sentiment of this review as positive or negative: 'The food was cold and "
        "the waiter was rude.' Answer with one word.",
    }
]


@pytest.fixture(scope="module")
def models() -> tuple[Any, Any]:
    from llama_cpp import Llama

    class Patched(Llama):  # type: ignore[misc]
        """Patched apart, so that other tests in this process keep llama-cpp-python as it is."""

    llama_server.patch(Patched)
    path = str(gguf_path("smollm2-135m"))
    reference = Llama(path, n_ctx=512, n_threads=1, logits_all=True, verbose=False)
    patched = Patched(path, n_ctx=512, n_threads=1, logits_all=False, verbose=False)
    return reference, patched


def content(completion: dict[str, Any]) -> list[dict[str, Any]]:
    return list(completion["choices"][0]["logprobs"]["content"])


@pytest.mark.parametrize("max_tokens", [3, 24], ids=["cut_off", "to_the_end"])
def test_logprobs_match_llama_cpps_own_with_logits_all_off(models: tuple[Any, Any], max_tokens: int) -> None:
    reference, patched = models
    asked = {"max_tokens": max_tokens, "temperature": 0, "logprobs": True, "top_logprobs": 2}
    expected = reference.create_chat_completion(MESSAGES, **asked)
    got = patched.create_chat_completion(MESSAGES, **asked)
    assert got["choices"][0]["message"]["content"] == expected["choices"][0]["message"]["content"]
    assert got["usage"] == expected["usage"]
    want, have = content(expected), content(got)
    assert len(have) == len(want) == got["usage"]["completion_tokens"]
    for a, b in zip(want, have, strict=True):
        assert b["token"] == a["token"] and math.isclose(b["logprob"], a["logprob"], abs_tol=1e-4)
        tops = {t["token"]: t["logprob"] for t in a["top_logprobs"]}
        assert [t["token"] for t in b["top_logprobs"]] == list(tops)
        assert all(math.isclose(t["logprob"], tops[t["token"]], abs_tol=1e-4) for t in b["top_logprobs"])


def test_without_logprobs_and_on_a_stream_nothing_is_recorded(models: tuple[Any, Any]) -> None:
    _, patched = models
    plain = patched.create_chat_completion(MESSAGES, max_tokens=4, temperature=0)
    assert plain["choices"][0]["logprobs"] is None
    # logits_all is off: llama-cpp-python would raise for a stream with logprobs; it streams without them.
    chunks = list(
        patched.create_chat_completion(MESSAGES, max_tokens=4, temperature=0, logprobs=True, stream=True)
    )
    assert chunks and all(chunk["choices"][0].get("logprobs") is None for chunk in chunks)
    assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
