"""End to end with real generation: the embedded SmolLM2-135M served by llama.cpp (the [local] extra).

Slow next to the rest (about a minute on 2 cores): each server loads the model (~2 s), answers are kept
short (max_tokens <= 48) and greedy (temperature 0), so they are deterministic.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.config import DEFAULT_CONFIG_PATH, RouterConfig
from router.config.embedded import missing_requirement
from router.rpc.server import COMPLETION_HEALTH_SERVICE, TIER_HEALTH_SERVICES, RouterServer, create_server
from tests.router.support import HARD_PROMPT, JSON_PROMPT, Backends, config_dict, user
from tests.router.waiting import NOT_SERVING, SERVING, alive, wait_gone, wait_health, wait_until

MISSING = missing_requirement("smollm2-135m")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "hosted_vllm/smollm2-135m"
GREEDY = pb.GenerationParams(max_tokens=48, temperature=0)


class Served:
    """An in-process router whose small tier is the embedded SmolLM2 (the large tier is a stand-in)."""

    def __init__(self, server: RouterServer, port: int):
        self.server = server
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.RouterStub(self.channel)

    def child_pid(self) -> int:
        pid = self.server.embedded.processes["small"].state.pid
        assert pid is not None
        return pid


@pytest.fixture
async def served(backends: Backends, scorer: object) -> AsyncIterator[Served]:
    raw = config_dict(backends, threshold=1.0)  # every prompt goes to the small tier
    raw["tiers"]["small"] = {"embedded": "smollm2-135m", "timeout": 60}
    server, port = create_server(RouterConfig.model_validate(raw), scorer=scorer)  # type: ignore[arg-type]
    await server.start()
    handle = Served(server, port)
    try:
        await wait_health(handle.channel, COMPLETION_HEALTH_SERVICE, SERVING, timeout_s=120)
        yield handle
    finally:
        await handle.channel.close()
        await server.stop(0)


def ask_the_child_directly(api_base: str, text: str) -> dict[str, object]:
    body = json.dumps(
        {
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 48,
            "temperature": 0,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{api_base}/chat/completions", body, headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        return dict(json.load(response))


async def test_a_small_routed_complete_is_real_text_with_the_models_token_counts(
    served: Served, backends: Backends
) -> None:
    request = pb.CompleteRequest(messages=user(JSON_PROMPT), params=GREEDY)
    response = await served.stub.Complete(request, timeout=60)
    assert response.decision.tier == "small" and response.model == MODEL and not response.fallback
    assert response.text.strip() and "John" in response.text
    assert 0 < response.usage.completion_tokens <= 48 and response.usage.prompt_tokens > 10
    assert response.finish_reason in ("stop", "length") and response.cost_usd == 0
    # The same request sent to llama.cpp without the router: the same text and the same counts.
    direct = ask_the_child_directly(served.server.embedded.processes["small"].spec.api_base, JSON_PROMPT)
    assert direct["choices"][0]["message"]["content"] == response.text  # type: ignore[index]
    usage = response.usage
    assert direct["usage"] == {
        "prompt_tokens": usage.prompt_tokens,  # type: ignore[comparison-overlap]
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    assert backends.small.requests == [] and backends.large.requests == []


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.mark.slow
async def test_a_schema_request_gets_json_that_validates_from_smollm2(
    served: Served, backends: Backends
) -> None:
    import jsonschema

    response_format = pb.ResponseFormat(type="json_schema", json_schema=json.dumps(PERSON), schema_name="p")
    request = pb.CompleteRequest(
        messages=user(JSON_PROMPT), params=pb.GenerationParams(temperature=0), response_format=response_format
    )
    response = await served.stub.Complete(request, timeout=90)
    assert response.decision.tier == "small" and not response.fallback, response.fallback_reason
    answer = json.loads(response.text)
    jsonschema.validate(answer, PERSON)
    assert response.schema_valid and backends.large.requests == []


WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [
    pb.Tool(
        name="get_weather",
        description="The weather in a city",
        parameters_json=json.dumps(WEATHER_PARAMETERS),
    ),
    pb.Tool(name="get_time", description="The time now"),
]


@pytest.mark.slow
async def test_a_required_tool_call_among_several_is_forced_on_smollm2(
    served: Served, backends: Backends
) -> None:
    """llama.cpp has no tool_choice "required": the router asks for the call under a grammar over the tools
    and reads it back, so the 135M model's answer is a call of one of them with valid arguments."""
    import jsonschema

    request = pb.CompleteRequest(
        messages=user("What is the weather in Paris right now?"),
        params=pb.GenerationParams(temperature=0, max_tokens=64),
        tools=TOOLS,
        tool_choice="required",
    )
    response = await served.stub.Complete(request, timeout=90)
    assert response.decision.tier == "small" and not response.fallback, response.fallback_reason
    [call] = response.tool_calls
    assert call.name in ("get_weather", "get_time") and response.finish_reason == "tool_calls"
    if call.name == "get_weather":
        jsonschema.validate(json.loads(call.arguments_json), WEATHER_PARAMETERS)
    assert response.schema_valid and response.text == "" and backends.large.requests == []


@pytest.mark.slow
async def test_without_max_tokens_the_embedded_default_caps_the_answer(served: Served) -> None:
    request = pb.CompleteRequest(messages=user(JSON_PROMPT))  # no params at all: the tier's defaults apply
    response = await served.stub.Complete(request, timeout=90)
    assert 0 < response.usage.completion_tokens <= 256  # EmbeddedGeneration.max_tokens


async def test_a_stream_concatenates_to_the_unary_answer_at_temperature_0(served: Served) -> None:
    request = pb.CompleteRequest(messages=user("Write two sentences about the sea."), params=GREEDY)
    unary = await served.stub.Complete(request, timeout=60)
    chunks = [chunk async for chunk in served.stub.CompleteStream(request, timeout=60)]
    deltas = [chunk.delta for chunk in chunks if chunk.delta]
    assert len(deltas) >= 3 and "".join(deltas) == unary.text
    assert chunks[0].model == MODEL and chunks[-1].finish_reason == unary.finish_reason
    assert chunks[-1].usage.completion_tokens > 0  # LiteLLM's count: llama.cpp's stream carries no usage


async def test_a_killed_child_is_restarted_and_later_calls_succeed(served: Served) -> None:
    first = served.child_pid()
    os.kill(first, signal.SIGKILL)
    await wait_health(served.channel, TIER_HEALTH_SERVICES["small"], NOT_SERVING)
    await wait_health(served.channel, COMPLETION_HEALTH_SERVICE, SERVING, timeout_s=60)
    assert served.child_pid() != first and not alive(first)
    response = await served.stub.Complete(
        pb.CompleteRequest(messages=user("Say hello."), params=GREEDY), timeout=60
    )
    assert response.text.strip() and response.model == MODEL and not response.fallback
    registry = served.server.metrics.registry
    assert registry.get_sample_value("rightsize_local_model_restarts_total", {"tier": "small"}) == 1


async def test_shutdown_leaves_no_child(served: Served) -> None:
    pid = served.child_pid()
    assert alive(pid)
    await served.server.stop(0)
    assert not alive(pid)


class Process:
    """A `rightsize` command in its own process, its stderr and stdout lines collected."""

    def __init__(self, *args: str, env: dict[str, str]):
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "router", *args],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, pattern: str, timeout_s: float = 120) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found.extend(match for line in self.lines if (match := re.search(pattern, line)))
            return bool(found) or self.popen.poll() is not None

        wait_until(seen, timeout_s)
        assert found, f"no line matching {pattern!r}:\n" + "\n".join(self.lines)
        return found[0]

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self._reader.join(10)
        assert self.popen.stdout is not None
        self.popen.stdout.close()


@pytest.fixture
def env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"} | {
        "PYTHONUNBUFFERED": "1",
        "PYTHONWARNINGS": "ignore",
    }


@pytest.fixture
def process_cleanup() -> Iterator[list[Process]]:
    processes: list[Process] = []
    yield processes
    for process in processes:
        process.close()


def test_the_shipped_config_answers_with_smollm2_and_sigterm_leaves_no_child(
    tmp_path: Path, env: dict[str, str], process_cleanup: list[Process]
) -> None:
    # The shipped config, plus a metadata rule that sends a prompt to the (keyless) large tier.
    config = tmp_path / "router.yaml"
    config.write_text(
        DEFAULT_CONFIG_PATH.read_text().replace(
            "  max_prompt_chars: 200000",
            "  max_prompt_chars: 200000\n  overrides: [{ metadata: { tier: hard }, tier: large }]",
        )
    )
    serve = Process(
        "serve", "--config", str(config), "--address", "127.0.0.1:0", "--metrics-port", "0",
        "--http-address", "127.0.0.1:0", env=env,
    )  # fmt: skip
    process_cleanup.append(serve)
    serve.wait_for(r"tier large: NOT live: openai/gpt-4o has no API key: set OPENAI_API_KEY")
    address = serve.wait_for(r"serving rightsize\.v1\.Router on (\S+:\d+)").group(1)
    child = int(serve.wait_for(r"tier small: live: smollm2-135m answers on .* \(pid (\d+)").group(1))
    serve.wait_for("completion backend ready")

    started = time.monotonic()
    easy = subprocess.run(
        [sys.executable, "-m", "router", "complete", "--address", address, JSON_PROMPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert easy.returncode == 0, easy.stderr
    assert time.monotonic() - started < 10
    assert easy.stdout.strip() and f"[small] {MODEL}" in easy.stderr
    hard = subprocess.run(
        [
            sys.executable,
            "-m",
            "router",
            "complete",
            "--address",
            address,
            "--metadata",
            "tier=hard",
            "--max-tokens",
            "16",
            HARD_PROMPT,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert hard.returncode == 0, hard.stderr
    assert (
        f"[fallback] answered by {MODEL}: large tier openai/gpt-4o has no API key: set OPENAI_API_KEY"
        in hard.stderr
    )

    serve.popen.send_signal(signal.SIGTERM)
    assert serve.popen.wait(30) == 0
    assert not alive(child)


def test_local_model_serve_stops_its_child_on_sigterm_and_when_killed(
    env: dict[str, str], process_cleanup: list[Process]
) -> None:
    for stop in (signal.SIGTERM, signal.SIGKILL):
        alone = Process("local-model", "serve", "--port", "0", env=env)
        process_cleanup.append(alone)
        match = alone.wait_for(r"as smollm2-135m on (http://\S+/v1) \(pid (\d+)\)")
        api_base, child = match.group(1), int(match.group(2))
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{api_base}/models") as reply:
            assert json.load(reply)["data"][0]["id"] == "smollm2-135m"
        alone.popen.send_signal(stop)
        exit_status = alone.popen.wait(30)
        assert exit_status == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
        wait_gone(child)  # after SIGKILL, by PR_SET_PDEATHSIG
