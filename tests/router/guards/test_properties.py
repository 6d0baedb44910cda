"""Property tests: any request gets a valid decision or a clean InvalidRequestError; any config file a
valid RouterConfig or a clean ConfigError."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from router._proto import router_pb2 as pb
from router.config import RouterConfig, load_config
from router.domain import ROLES, TIERS, Message, Request
from router.errors import ConfigError, InvalidRequestError
from router.pipeline import validated_scoring_text
from router.routing.policy import decide
from router.rpc import convert

CONFIG = RouterConfig.model_validate(
    {
        "tiers": {"small": {"model": "ollama_chat/llama3:8b"}, "large": {"model": "openai/gpt-4o"}},
        "routing": {
            "max_prompt_chars": 2000,
            "context_turns": 2,
            "overrides": [{"metadata": {"tenant": "acme"}, "threshold": 0.8}],
        },
    }
)
ROLE = st.one_of(st.sampled_from(sorted(ROLES)), st.text(max_size=8))
MESSAGE = st.builds(Message, ROLE, st.text(max_size=400))
REQUEST = st.builds(
    Request,
    messages=st.lists(MESSAGE, max_size=8).map(tuple),
    request_id=st.just("r1"),
    metadata=st.dictionaries(st.sampled_from(["tenant", "task", ""]), st.text(max_size=6), max_size=3),
    force_tier=st.one_of(st.sampled_from(["", *TIERS]), st.text(max_size=6)),
)


@settings(max_examples=300, deadline=None)
@given(REQUEST, st.floats(min_value=0, max_value=1))
def test_any_request_is_decided_or_cleanly_refused(request: Request, score: float) -> None:
    try:
        text = validated_scoring_text(request, CONFIG)
    except InvalidRequestError as exc:
        assert str(exc)
        return
    assert text.strip()
    decision = decide(score, request, CONFIG, classifier_version="v")
    assert decision.tier in TIERS and 0.0 <= decision.threshold <= 1.0
    if request.force_tier:
        assert decision.tier == request.force_tier


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_request_or_fail_to_decode(raw: bytes) -> None:
    try:
        message = pb.CompleteRequest.FromString(raw)
    except DecodeError:
        return
    request = convert.complete_request(message)
    with contextlib.suppress(InvalidRequestError):
        validated_scoring_text(request, CONFIG)


YAML_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=12)
)
YAML_VALUE = st.recursive(
    YAML_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
SECTIONS = ["server", "tiers", "routing", "scoring", "models", "log", "learning", "auth", "tls", "limits"]
KEYS = [
    "address",
    "metrics_port",
    "threshold",
    "fallback",
    "breaker",
    "api_keys",
    "max_messages",
    "url",
    "rate_limit",
    "model",
    "small",
    "large",
    "timeout",
    "redact",
    "builtin",
    "patterns",
    "overrides",
]


def _nested_edit() -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.dictionaries(st.sampled_from(KEYS), YAML_VALUE, max_size=3)
    return st.dictionaries(st.sampled_from(SECTIONS), st.one_of(YAML_VALUE, leaf), max_size=3)


def _merge(base: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in edit.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


BASE = {
    "tiers": {"small": {"model": "ollama_chat/llama3:8b"}, "large": {"model": "openai/gpt-4o"}},
    "log": {"url": "sqlite:///requests.db"},
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        _nested_edit().map(lambda edit: json.dumps(_merge(BASE, edit), default=str)), st.text(max_size=200)
    )
)
@example(json.dumps(_merge(BASE, {"server": {"\n": None}})))  # found by hypothesis: a key holding a newline
@example(json.dumps(_merge(BASE, {"routing": {"": 1, "a.b": 2}})))
def test_any_config_file_loads_or_fails_with_a_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "router.yaml"
        path.write_text(text)
        try:
            config = load_config(path, environ={})
        except ConfigError as exc:
            assert str(exc) and "\n" not in str(exc)  # one line naming the key
            return
        assert isinstance(config, RouterConfig)
