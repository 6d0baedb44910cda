"""`python -P router/backends/llama_server.py ARGS...`: `llama_cpp.server` with cheap token log-probabilities.

The embedded tier's child. It is llama_cpp.server itself (same flags, same API), with two changes:

- The model is loaded with `logits_all` off (llama_cpp.server's default is on). With it on, every decode
  copies the logits of every prompt token out of llama.cpp (n_tokens x 49,152 floats for SmolLM2): the
  stock server answered 1.09x slower without logprobs (benchmarks/bench_logprobs.py, README).
- A non-streaming completion that asks for `logprobs` gets them from the logits llama.cpp samples from,
  one row per generated token, through a logits processor. llama-cpp-python's own path needs `logits_all`,
  log-softmaxes the whole logits buffer, and sorts every row of 49,152 (logit, id) pairs in Python: about
  60 ms a token. Here a token costs one log-sum-exp and one partial sort in numpy: 0.6 ms of the
  processor's own on a 2-vCPU Xeon; a whole completion with logprobs took 1.12x one without (README).
  A streamed completion is served without log-probabilities (the router never asks for them on a stream).

Run by path, with stdlib, numpy and llama_cpp only: importing the `router` package would cost the child
~0.4 s at every start.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

# Set in the child only; the server answers one request at a time per model (llama_cpp.server holds a lock).
_recording = threading.local()


class TokenLogprobs:
    """Records, for each sampled token, its log-probability and the `top` best alternatives.

    As a logits processor it sees each step's raw logits (before penalties and temperature, the model's
    own distribution) and keeps that step's log-normaliser and best `top` entries; `sampled(token)` then
    resolves the step once the sampler has chosen.
    """

    def __init__(self, top: int):
        self.top = max(1, top)
        self.steps: list[tuple[int, float, list[tuple[int, float]]]] = []
        self._row: np.ndarray | None = None
        self._log_z = 0.0
        self._best: list[tuple[int, float]] = []

    def __call__(self, input_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        row = np.asarray(logits, dtype=np.float32)
        peak = float(row.max())
        self._log_z = peak + float(np.log(np.exp(row - peak).sum(dtype=np.float64)))
        k = min(self.top, len(row))
        ids = np.argpartition(-row, k - 1)[:k]
        ids = ids[np.argsort(-row[ids], kind="stable")]
        self._best = [(int(i), float(row[i]) - self._log_z) for i in ids]
        self._row = row.copy()
        return logits

    def sampled(self, token: int) -> None:
        if self._row is None:
            return
        logprob = float(self._row[token]) - self._log_z
        self.steps.append((token, logprob, self._best))
        self._row = None

    def completion_logprobs(self, llama: Any, count: int) -> dict[str, list[Any]]:
        """The first `count` steps in llama_cpp's text-completion shape (which its chat handler converts)."""
        tokens: list[int] = []
        strings, offsets, logprobs, tops = [], [], [], []
        offset = 0
        for token, logprob, best in self.steps[:count]:
            text = _piece(llama, token, tokens)
            top = {_piece(llama, i, tokens): value for i, value in best}
            top[text] = logprob
            strings.append(text)
            offsets.append(offset)
            logprobs.append(logprob)
            tops.append(top)
            offset += len(text)
            tokens.append(token)
        return {"tokens": strings, "text_offset": offsets, "token_logprobs": logprobs, "top_logprobs": tops}


def _piece(llama: Any, token: int, previous: list[int]) -> str:
    return str(llama.detokenize([token], prev_tokens=previous).decode("utf-8", errors="ignore"))


def patch(llama_class: Any) -> None:
    """Route `logprobs` requests of `llama_class.create_completion` through TokenLogprobs."""
    from llama_cpp import LogitsProcessorList

    original_completion: Callable[..., Any] = llama_class.create_completion
    original_sample: Callable[..., int] = llama_class.sample

    def sample(self: Any, *args: Any, **kwargs: Any) -> int:
        token = original_sample(self, *args, **kwargs)
        recorder = getattr(_recording, "recorder", None)
        if recorder is not None:
            recorder.sampled(int(token))
        return token

    def create_completion(self: Any, *args: Any, **kwargs: Any) -> Any:
        top = kwargs.get("logprobs")
        if top is None or kwargs.get("echo"):
            return original_completion(self, *args, **kwargs)
        kwargs["logprobs"] = None
        if kwargs.get("stream"):
            return original_completion(self, *args, **kwargs)
        recorder = TokenLogprobs(int(top))
        kwargs["logits_processor"] = LogitsProcessorList([*(kwargs.get("logits_processor") or []), recorder])
        _recording.recorder = recorder
        try:
            completion = original_completion(self, *args, **kwargs)
        finally:
            _recording.recorder = None
        count = int(completion["usage"]["completion_tokens"])
        completion["choices"][0]["logprobs"] = recorder.completion_logprobs(self, count)
        return completion

    llama_class.sample = sample
    llama_class.create_completion = create_completion


def main(argv: list[str]) -> None:
    import llama_cpp
    from llama_cpp.server.__main__ import main as serve

    patch(llama_cpp.Llama)
    if not any(arg == "--logits_all" or arg.startswith("--logits_all=") for arg in argv):
        argv = [*argv, "--logits_all", "False"]
    sys.argv = [sys.argv[0], *argv]
    serve()


if __name__ == "__main__":
    main(sys.argv[1:])
