"""LiteLLM dispatch against the stand-ins over real HTTP: text, usage, cost, params, streaming, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from router.backends.litellm import DEADLINE_MARGIN_S, BackendCall, LiteLLMBackend
from router.config import TierSettings
from router.domain import GenerationParams, Message
from router.errors import BackendError
from tests.router.standins import StandIn

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = (Message("system", "be brief"), Message("user", "what is two plus two"))  # 7 words in


@pytest.fixture(scope="module")
def backend() -> LiteLLMBackend:
    backend = LiteLLMBackend()
    backend.start_loading()
    assert backend.wait_loaded(60), backend.load_error
    return backend


@pytest.fixture(autouse=True)
async def flush_litellm_callbacks(backend: LiteLLMBackend) -> AsyncIterator[None]:
    yield
    await backend.aclose()


@pytest.fixture
def ollama() -> Iterator[StandIn]:
    standin = StandIn("ollama", reply="four is the answer")
    yield standin
    standin.kill()


@pytest.fixture
def openai() -> Iterator[StandIn]:
    standin = StandIn("openai", reply="the answer is four")
    yield standin
    standin.kill()


def small(standin: StandIn, **extra: Any) -> BackendCall:
    settings = TierSettings(model="ollama_chat/llama3:8b", api_base=standin.url, **extra)
    return BackendCall("small", settings, MESSAGES, GenerationParams())


def large(standin: StandIn, **extra: Any) -> BackendCall:
    key = SecretStr("sk-test")
    settings = TierSettings(model="openai/gpt-4o", api_base=standin.url, api_key=key, **extra)
    return BackendCall("large", settings, MESSAGES, GenerationParams())


async def test_ollama_unary_text_usage_and_forwarded_params(backend: LiteLLMBackend, ollama: StandIn) -> None:
    call = small(ollama)
    params = GenerationParams(max_tokens=12, temperature=0.0, top_p=0.5, stop=("\n\n",))
    generation = await backend.complete(BackendCall(call.tier, call.settings, call.messages, params))
    assert generation.text == "four is the answer"
    assert (generation.usage.prompt_tokens, generation.usage.completion_tokens) == (7, 4)
    assert generation.cost_usd == 0.0  # a local tier without a configured price is free
    assert generation.finish_reason == "stop"
    assert generation.model == "ollama_chat/llama3:8b"
    body = ollama.requests[-1]["body"]
    assert body["model"] == "llama3:8b" and body["stream"] is False
    assert body["options"] == {"num_predict": 12, "temperature": 0.0, "top_p": 0.5, "stop": ["\n\n"]}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


async def test_openai_unary_uses_the_configured_price_and_key(
    backend: LiteLLMBackend, openai: StandIn
) -> None:
    generation = await backend.complete(large(openai, input_cost_per_token=1e-6, output_cost_per_token=3e-6))
    assert generation.text == "the answer is four"
    assert (generation.usage.prompt_tokens, generation.usage.completion_tokens) == (7, 4)
    assert generation.cost_usd == pytest.approx(7 * 1e-6 + 4 * 3e-6)
    request = openai.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test"


async def test_cloud_model_without_configured_price_is_priced_by_litellm(
    backend: LiteLLMBackend, openai: StandIn
) -> None:
    import litellm

    generation = await backend.complete(large(openai))
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="openai/gpt-4o", prompt_tokens=7, completion_tokens=4
    )
    assert generation.cost_usd == pytest.approx(prompt_cost + completion_cost)
    assert generation.cost_usd > 0


async def test_extra_tier_keys_reach_the_provider(backend: LiteLLMBackend, openai: StandIn) -> None:
    await backend.complete(large(openai, extra_headers={"X-Team": "routing"}))
    assert openai.requests[-1]["headers"]["x-team"] == "routing"


@pytest.mark.parametrize("kind", ["ollama", "openai"])
async def test_streaming_yields_the_text_then_usage_and_cost(
    backend: LiteLLMBackend, ollama: StandIn, openai: StandIn, kind: str
) -> None:
    priced = {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}
    call = small(ollama) if kind == "ollama" else large(openai, **priced)
    deltas = [delta async for delta in backend.stream(call)]
    assert "".join(delta.text for delta in deltas) == (ollama if kind == "ollama" else openai).reply
    assert len(deltas) >= 4  # really streamed, word by word
    last = deltas[-1]
    assert last.finish_reason == "stop"
    assert last.usage is not None and (last.usage.prompt_tokens, last.usage.completion_tokens) == (7, 4)
    assert last.cost_usd == pytest.approx(0.0 if kind == "ollama" else 11e-6)
    assert all(delta.usage is None for delta in deltas[:-1])


async def test_a_dead_backend_is_a_connection_error_naming_the_tier(
    backend: LiteLLMBackend, ollama: StandIn
) -> None:
    ollama.kill()
    with pytest.raises(BackendError) as raised:
        await backend.complete(small(ollama))
    assert raised.value.kind == "connection"
    assert str(raised.value).startswith("small tier (ollama_chat/llama3:8b) connection:")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, "server"), (503, "server"), (401, "auth"), (429, "rate_limit"), (400, "bad_request")],
)
async def test_http_errors_are_translated_by_kind(
    backend: LiteLLMBackend, openai: StandIn, status: int, kind: str
) -> None:
    openai.status = status
    with pytest.raises(BackendError) as raised:
        await backend.complete(large(openai, num_retries=0))
    assert raised.value.kind == kind and raised.value.tier == "large"


@pytest.mark.parametrize("streaming", [False, True])
async def test_the_deadline_bounds_the_backend_call(
    backend: LiteLLMBackend, openai: StandIn, streaming: bool
) -> None:
    openai.delay_s = 5
    call = large(openai)
    call = BackendCall(call.tier, call.settings, call.messages, call.params, deadline=time.monotonic() + 0.4)
    started = time.monotonic()
    with pytest.raises(BackendError) as raised:
        if streaming:
            [delta async for delta in backend.stream(call)]
        else:
            await backend.complete(call)
    assert raised.value.kind == "timeout"
    assert 0.35 < time.monotonic() - started < 1.5


async def test_the_tier_timeout_applies_without_a_deadline(backend: LiteLLMBackend, ollama: StandIn) -> None:
    ollama.delay_s = 5
    started = time.monotonic()
    with pytest.raises(BackendError, match="timeout"):
        await backend.complete(small(ollama, timeout=0.3))
    assert time.monotonic() - started < 1.5


def test_timeout_is_the_tighter_of_tier_timeout_and_deadline(ollama: StandIn) -> None:
    call = small(ollama, timeout=30)
    assert call.timeout_s() == 30
    soon = BackendCall(call.tier, call.settings, call.messages, call.params, deadline=time.monotonic() + 2)
    assert 1.9 < (soon.timeout_s() or 0) <= 2 - DEADLINE_MARGIN_S
    past = BackendCall(call.tier, call.settings, call.messages, call.params, deadline=time.monotonic() - 1)
    assert past.timeout_s() == 0
    assert small(ollama).timeout_s() is None


def test_loading_litellm_ignores_a_dotenv_file_in_the_working_directory(tmp_path: Path) -> None:
    """In its default DEV mode, importing litellm reads ./.env into os.environ; the service must not."""
    (tmp_path / ".env").write_text("RIGHTSIZE_DOTENV_PROBE=planted\nOPENAI_API_KEY=sk-from-a-stray-file\n")
    script = (
        "import os\n"
        "from router.backends.litellm import LiteLLMBackend\n"
        "backend = LiteLLMBackend(); backend.start_loading(); assert backend.wait_loaded(60)\n"
        "print(os.environ.get('RIGHTSIZE_DOTENV_PROBE'), os.environ.get('OPENAI_API_KEY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "LITELLM_MODE")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "None"]


async def test_ollama_calls_send_no_model_lookups(
    backend: LiteLLMBackend, ollama: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiteLLM looks up an unmapped Ollama model with POST /api/show before each call (three per call in
    1.82.6, to $OLLAMA_API_BASE); entering the model in its map once leaves only the chat requests."""
    monkeypatch.setenv("OLLAMA_API_BASE", ollama.url)  # where LiteLLM sends its lookups: here, observable
    settings = TierSettings(model="ollama_chat/lookup-probe:1b", api_base=ollama.url)
    call = BackendCall("small", settings, MESSAGES, GenerationParams())
    for _ in range(3):
        assert (await backend.complete(call)).text == "four is the answer"
    async for _ in backend.stream(call):
        pass
    paths = [request["path"] for request in ollama.requests]
    assert paths.count("/api/chat") == 4
    assert paths.count("/api/show") <= 1, paths  # the one lookup register_model makes, nothing per call
