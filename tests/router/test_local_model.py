"""The managed local model without llama.cpp: config, the child's command, supervision, and the server's use.

A stand-in module (tests/router/fake_llama_server.py) takes the llama.cpp server's place, so restarts,
backoff, health and the death of the parent are checked in seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.backends.embedded import EmbeddedTiers, tier_status_lines
from router.backends.llama_child import (
    EmbeddedProcess,
    EmbeddedSpec,
    EmbeddedState,
    free_port,
    serves_alias,
)
from router.config import RouterConfig, TierSettings, load_config
from router.config.embedded import missing_requirement
from router.errors import ConfigError
from router.rpc.server import COMPLETION_HEALTH_SERVICE, TIER_HEALTH_SERVICES, create_server
from tests.router.conftest import FAKE_LLAMA_MODULE, ROOT
from tests.router.fake_llama_server import REPLY
from tests.router.support import Backends, KeyedScorer, config_dict, user
from tests.router.waiting import NOT_SERVING, SERVING, alive, health, wait_gone, wait_health, wait_until

MakeSpec = Callable[..., EmbeddedSpec]


@pytest.fixture
def fake_spec(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> MakeSpec:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the child finds the stand-in module

    def make(alias: str = "fake") -> EmbeddedSpec:
        return EmbeddedSpec(
            gguf=gguf, alias=alias, port=free_port(), ready_timeout_s=20, server_module=FAKE_LLAMA_MODULE
        )

    return make


# --- config -----------------------------------------------------------------------------------------


def test_an_embedded_tier_becomes_a_hosted_vllm_model_named_after_it(gguf: Path) -> None:
    assert TierSettings(embedded="smollm2-135m").model == "hosted_vllm/smollm2-135m"  # type: ignore[call-arg]
    tier = TierSettings.model_validate({"embedded": str(gguf), "embedded_options": {"n_ctx": 512}})
    assert tier.model == "hosted_vllm/tiny-model.q4"
    assert "embedded" not in tier.litellm_kwargs() and "embedded_options" not in tier.litellm_kwargs()


@pytest.mark.parametrize("clash", ["model", "api_base"])
def test_embedded_with_model_or_api_base_is_refused(tmp_path: Path, clash: str) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(f'tiers: {{ small: {{ embedded: smollm2-135m, {clash}: "x" }}, large: {{ model: m }} }}')
    with pytest.raises(ConfigError, match=f"tiers.small: .*set `embedded` or `{clash}`, not both"):
        load_config(path, environ={})


def test_a_relative_gguf_path_is_relative_to_the_config_file(tmp_path: Path, gguf: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(f"tiers: {{ small: {{ embedded: {gguf.name} }}, large: {{ model: m }} }}")
    assert load_config(path, environ={}).tiers.small.embedded == str(gguf)
    path.write_text("tiers: { small: { embedded: nowhere.gguf }, large: { model: m } }")
    with pytest.raises(ConfigError, match=r"tiers\.small\.embedded: .*no GGUF file at .*nowhere\.gguf"):
        load_config(path, environ={})
    path.write_text("tiers: { small: { embedded: llama9 }, large: { model: m } }")
    with pytest.raises(ConfigError, match="expected smollm2-135m or a path to a .gguf file, got 'llama9'"):
        load_config(path, environ={})


def test_without_the_local_extra_if_not_installed_replaces_the_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "router.config.settings.missing_requirement", lambda name: f"{name} needs the [local] extra"
    )
    path = tmp_path / "router.yaml"
    path.write_text("tiers: { small: { embedded: smollm2-135m }, large: { model: m } }")
    with pytest.raises(ConfigError, match=r"tiers\.small\.embedded: smollm2-135m needs the \[local\] extra"):
        load_config(path, environ={})
    default = load_config(environ={})  # the shipped config says what to use instead
    assert default.tiers.small.model == "ollama_chat/llama3:8b" and default.tiers.small.embedded is None


def test_the_shipped_default_small_tier_is_smollm2_when_the_extra_is_installed() -> None:
    small = load_config(environ={}).tiers.small
    if missing_requirement("smollm2-135m") is None:
        assert (small.model, small.embedded) == ("hosted_vllm/smollm2-135m", "smollm2-135m")
    else:
        assert (small.model, small.api_base) == ("ollama_chat/llama3:8b", "http://127.0.0.1:11434")


# --- the child ----------------------------------------------------------------------------------------


def test_the_child_command_and_environment(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EmbeddedSpec(gguf=gguf, alias="tiny", port=4321, threads=1, n_ctx=1024)
    argv = spec.command(parent_pid=77)
    assert argv[1:5] == ["-P", str(ROOT / "router" / "backends" / "launch.py"), "77", "--"]
    assert argv[5:8] == [sys.executable, "-P", str(ROOT / "router" / "backends" / "llama_server.py")]
    flags = dict(zip(argv[8::2], argv[9::2], strict=True))
    assert flags["--model_alias"] == "tiny" and flags["--port"] == "4321" and flags["--host"] == "127.0.0.1"
    assert flags["--n_threads"] == flags["--n_threads_batch"] == "1" and flags["--n_ctx"] == "1024"
    assert flags["--interrupt_requests"] == "False"
    assert spec.api_base == "http://127.0.0.1:4321/v1" and spec.litellm_model == "hosted_vllm/tiny"
    # llama_cpp.server reads any variable named like a setting: an inherited API_KEY or PORT must not pass.
    monkeypatch.setenv("API_KEY", "x")
    monkeypatch.setenv("PORT", "1")
    from router.backends.llama_child import _child_env

    env = _child_env()
    assert "API_KEY" not in env and "PORT" not in env and env["PATH"] == os.environ["PATH"]


def test_a_killed_child_is_restarted_on_its_port_and_stop_leaves_none(fake_spec: MakeSpec) -> None:
    spec = fake_spec()
    states: list[EmbeddedState] = []
    process = EmbeddedProcess(spec, on_change=states.append)
    process.start()
    try:
        assert process.wait_ready(20)
        first = process.state.pid
        assert first is not None and serves_alias(spec.api_base, "fake")
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: process.state.up and process.state.restarts == 1)
        second = process.state.pid
        assert second is not None and second != first and serves_alias(spec.api_base, "fake")
        backoff = [state for state in states if state.phase == "backoff"]
        assert backoff and backoff[0].detail == "child killed by SIGKILL; restart 1 in 0.5 s"
    finally:
        process.stop(grace_s=2)
    assert not alive(second)
    assert process.state.phase == "stopped" and not serves_alias(spec.api_base, "fake", timeout_s=0.2)


def test_a_child_that_fails_to_load_backs_off_exponentially_naming_its_error(fake_spec: MakeSpec) -> None:
    states: list[EmbeddedState] = []
    process = EmbeddedProcess(fake_spec("crash-on-load"), on_change=states.append)
    process.start()
    try:
        wait_until(lambda: process.state.restarts >= 2)
        assert not process.wait_ready(0.1)
    finally:
        process.stop()
    details = [state.detail for state in states if state.phase == "backoff"]
    assert details[0].startswith("child exited with status 3 during start (ValueError: Failed to load model")
    assert details[0].endswith("restart 1 in 0.5 s") and details[1].endswith("restart 2 in 1.0 s")


KILLED_PARENT = """
import sys, time
from pathlib import Path
from router.backends.llama_child import EmbeddedProcess, EmbeddedSpec
spec = EmbeddedSpec(gguf=Path(sys.argv[1]), alias="fake", port=int(sys.argv[2]), server_module=sys.argv[3])
process = EmbeddedProcess(spec)
process.start()
assert process.wait_ready(20)
print(process.state.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_the_child_dies_with_a_parent_killed_by_sigkill(gguf: Path) -> None:
    argv = [sys.executable, "-c", KILLED_PARENT, str(gguf), str(free_port()), FAKE_LLAMA_MODULE]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()  # no chance to clean up: only PR_SET_PDEATHSIG can stop the child
        parent.wait(10)
        wait_gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(10)
        assert parent.stdout is not None
        parent.stdout.close()


# --- in the server -------------------------------------------------------------------------------------


@pytest.fixture
def embedded_config(backends: Backends, gguf: Path, fake_llama: None) -> RouterConfig:
    raw = config_dict(backends)
    raw["tiers"]["small"] = {"embedded": str(gguf), "timeout": 10}
    return RouterConfig.model_validate(raw)


async def test_the_server_runs_the_embedded_tier_and_its_health_follows_the_child(
    embedded_config: RouterConfig,
) -> None:
    server, port = create_server(embedded_config, scorer=KeyedScorer(default=0.1))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.RouterStub(channel)
    try:
        # Sent at once: the call waits for the child to start instead of failing over.
        response = await stub.Complete(pb.CompleteRequest(messages=user("hi")), timeout=30)
        assert (response.text, response.model) == (REPLY, "hosted_vllm/tiny-model.q4")
        assert not response.fallback
        await wait_health(channel, COMPLETION_HEALTH_SERVICE, SERVING)
        assert await health(channel, TIER_HEALTH_SERVICES["small"]) == SERVING
        child = server.embedded.processes["small"].state.pid
        assert child is not None

        os.kill(child, signal.SIGKILL)
        await wait_health(channel, TIER_HEALTH_SERVICES["small"], NOT_SERVING)
        await wait_health(channel, COMPLETION_HEALTH_SERVICE, SERVING)
        registry = server.metrics.registry
        assert registry.get_sample_value("rightsize_local_model_restarts_total", {"tier": "small"}) == 1
        assert registry.get_sample_value("rightsize_local_model_up", {"tier": "small"}) == 1
        response = await stub.Complete(pb.CompleteRequest(messages=user("hi again")), timeout=30)
        assert response.text == REPLY and not response.fallback
        restarted = server.embedded.processes["small"].state.pid
    finally:
        await channel.close()
        await server.stop(0)
    assert restarted is not None and not alive(restarted)


def test_the_start_lines_say_which_tiers_are_live(backends: Backends) -> None:
    raw = config_dict(backends)
    raw["tiers"]["large"] = {"model": "openai/gpt-4o", "api_key_env": "RIGHTSIZE_TEST_UNSET_KEY"}
    lines = tier_status_lines(RouterConfig.model_validate(raw), EmbeddedTiers({}))
    assert lines[0] == (True, f"tier small: live: ollama_chat/llama3:8b at {backends.small.url}")
    assert lines[1] == (
        False,
        "tier large: NOT live: openai/gpt-4o has no API key: set "
        "RIGHTSIZE_TEST_UNSET_KEY; large-routed prompts are answered by the small "
        "tier (ollama_chat/llama3:8b) as a fallback",
    )
    backends.small.kill()
    raw["tiers"]["large"] = {"model": "openai/gpt-4o", "api_key": "sk-x"}
    small, large = tier_status_lines(RouterConfig.model_validate(raw), EmbeddedTiers({}))
    assert small[0] is False and "NOT live: ollama_chat/llama3:8b: nothing listens at" in small[1]
    assert large == (True, "tier large: configured: openai/gpt-4o (not contacted at start)")
