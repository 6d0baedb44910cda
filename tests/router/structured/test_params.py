"""check_generation_params: in-range values pass, every out-of-range one is refused by name."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.errors import InvalidRequestError
from router.structured import check_generation_params


@given(
    max_tokens=st.none() | st.integers(1, 2**31 - 1),
    temperature=st.none() | st.floats(0.0, 2.0),
    top_p=st.none() | st.floats(0.0, 1.0, exclude_min=True),
    stop=st.lists(st.text(min_size=1, max_size=256), max_size=4),
    presence_penalty=st.none() | st.floats(-2.0, 2.0),
    frequency_penalty=st.none() | st.floats(-2.0, 2.0),
)
def test_values_in_range_pass(**params: object) -> None:
    check_generation_params(**params)  # type: ignore[arg-type]


@given(st.integers(max_value=0))
def test_max_tokens_must_be_positive(max_tokens: int) -> None:
    with pytest.raises(InvalidRequestError, match=f"params.max_tokens is {max_tokens}; expected a positive"):
        check_generation_params(max_tokens=max_tokens)


@given(st.floats(allow_nan=True).filter(lambda t: math.isnan(t) or not 0.0 <= t <= 2.0))
def test_temperature_outside_0_2_is_refused(temperature: float) -> None:
    with pytest.raises(InvalidRequestError, match=r"params.temperature is .*; expected a value in \[0, 2\]"):
        check_generation_params(temperature=temperature)


@pytest.mark.parametrize("top_p", [0.0, -0.1, 1.0001, math.nan, math.inf])
def test_top_p_outside_0_1_is_refused(top_p: float) -> None:
    with pytest.raises(InvalidRequestError, match=r"params.top_p is .*; expected a value in \(0, 1\]"):
        check_generation_params(top_p=top_p)


@pytest.mark.parametrize("name", ["presence_penalty", "frequency_penalty"])
@pytest.mark.parametrize("value", [-2.01, 2.5, math.nan])
def test_penalties_outside_minus2_2_are_refused(name: str, value: float) -> None:
    with pytest.raises(InvalidRequestError, match=rf"params.{name} is .*; expected a value in \[-2, 2\]"):
        check_generation_params(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stop", "message"),
    [
        (["a", "b", "c", "d", "e"], "params.stop has 5 sequences; at most 4"),
        (["ok", ""], r"params.stop\[1\] is empty"),
        (["x" * 257], r"params.stop\[0\] has 257 characters; at most 256"),
    ],
)
def test_an_oversize_stop_list_is_refused(stop: list[str], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        check_generation_params(stop=stop)
