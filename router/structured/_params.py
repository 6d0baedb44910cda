"""Range checks on generation parameters: an out-of-range value is an InvalidRequestError naming it."""

from __future__ import annotations

from collections.abc import Sequence

from router.errors import InvalidRequestError

MAX_STOP_SEQUENCES = 4  # OpenAI's limit; Ollama and llama.cpp take more, but a request must suit every tier
MAX_STOP_CHARS = 256
TEMPERATURE_RANGE = (0.0, 2.0)
PENALTY_RANGE = (-2.0, 2.0)


def check_generation_params(
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: Sequence[str] = (),
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
) -> None:
    """Raise InvalidRequestError for the first parameter out of its range; None means unset (allowed).

    max_tokens > 0; temperature in [0, 2]; top_p in (0, 1]; at most 4 non-empty stop sequences of up to
    256 characters; penalties in [-2, 2]. NaN is out of every range. (Any integer is a valid seed.)
    """
    if max_tokens is not None and max_tokens <= 0:
        raise InvalidRequestError(f"params.max_tokens is {max_tokens}; expected a positive number of tokens")
    if temperature is not None and not TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]:
        raise InvalidRequestError(f"params.temperature is {temperature:g}; expected a value in [0, 2]")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InvalidRequestError(f"params.top_p is {top_p:g}; expected a value in (0, 1]")
    _check_stop(stop)
    for name, value in (("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)):
        if value is not None and not PENALTY_RANGE[0] <= value <= PENALTY_RANGE[1]:
            raise InvalidRequestError(f"params.{name} is {value:g}; expected a value in [-2, 2]")


def _check_stop(stop: Sequence[str]) -> None:
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequestError(
            f"params.stop has {len(stop)} sequences; at most {MAX_STOP_SEQUENCES} are allowed"
        )
    for index, sequence in enumerate(stop):
        if not sequence:
            raise InvalidRequestError(f"params.stop[{index}] is empty")
        if len(sequence) > MAX_STOP_CHARS:
            raise InvalidRequestError(
                f"params.stop[{index}] has {len(sequence)} characters; at most {MAX_STOP_CHARS}"
            )
