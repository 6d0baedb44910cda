"""`rightsize serve/route/complete` as a user runs them: readable output and one-line errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from router.cli import main
from router.config import RouterConfig
from tests.router.conftest import StartServer
from tests.router.support import LARGE_REPLY, SMALL_REPLY, Backends, KeyedScorer, config_dict

MakeConfig = Callable[..., RouterConfig]


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def test_route_prints_tier_score_model_and_latency(
    start_server: StartServer, make_config: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_server(
        make_config(threshold=0.5), with_scorer=KeyedScorer(default=0.75), wait_completion=False
    )
    status, out, _ = await run(capsys, "route", "Design a distributed system", "--address", server.address)
    assert status == 0
    assert "tier       large" in out and "model      openai/gpt-4o" in out
    assert "score      0.750 (threshold 0.5)" in out and "reason     global threshold 0.5" in out
    assert " ms" in out.split("latency")[1].splitlines()[0]
    status, out, _ = await run(
        capsys, "route", "x", "--json", "--metadata", "tenant=acme", "--address", server.address
    )
    decision = json.loads(out)
    assert status == 0 and decision["tier"] == "large" and decision["classifier_version"] == "fake-1"


@pytest.mark.parametrize("stream", [False, True])
async def test_complete_prints_the_answer_and_a_summary(
    start_server: StartServer, make_config: MakeConfig, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    server = await start_server(make_config(threshold=0.5), with_scorer=KeyedScorer(default=0.1))
    argv = ["complete", "hello", "--address", server.address, *(["--stream"] if stream else [])]
    status, out, err = await run(capsys, *argv)
    assert status == 0 and out == SMALL_REPLY + "\n"
    assert "[small] ollama_chat/llama3:8b  score 0.100" in err and "tokens, $0.000000, stop" in err
    status, out, err = await run(capsys, *argv, "--tier", "large")
    assert status == 0 and out == LARGE_REPLY + "\n" and "forced by request" in err


async def test_client_errors_are_one_line(
    start_server: StartServer, make_config: MakeConfig, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.small.kill()
    backends.large.kill()
    server = await start_server(make_config(), with_scorer=KeyedScorer(default=0.1))
    status, _, err = await run(capsys, "complete", "hi", "--address", server.address)
    assert status == 1 and err.startswith("rightsize: error: UNAVAILABLE: all tiers failed")
    assert err.count("\n") == 1
    status, _, err = await run(capsys, "route", "hi", "--address", "127.0.0.1:1", "--timeout", "2")
    assert status == 1 and err.startswith("rightsize: error: cannot reach the router at 127.0.0.1:1: ")
    assert err.count("\n") == 1


def test_serve_refuses_a_bad_config_naming_the_key(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_dict(backends, threshold=7)
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(config))
    assert main(["serve", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"rightsize: error: {path}: routing.threshold:") and err.count("\n") == 1


def test_serve_fails_fast_on_a_bad_model_dir(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {**config_dict(backends), "models": {"dir": str(tmp_path), "active": "missing"}}
    path = tmp_path / "router.yaml"
    path.write_text(json.dumps(config))
    assert main(["serve", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rightsize: error: ") and str(tmp_path / "missing") in err and err.count("\n") == 1


def test_clients_default_to_the_address_the_default_config_serves_on() -> None:
    from router.cli.service_commands import DEFAULT_ADDRESS
    from router.config import load_config

    assert load_config(environ={}).server.address == DEFAULT_ADDRESS


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--max-tokens", "-5"], "params.max_tokens is -5"), (["--temperature", "3"], "params.temperature is 3"),
     (["--top-p", "0"], "params.top_p is 0")],
)  # fmt: skip
async def test_out_of_range_params_are_a_one_line_error(
    start_server: StartServer,
    make_config: MakeConfig,
    backends: Backends,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    named: str,
) -> None:
    server = await start_server(make_config(), with_scorer=KeyedScorer(default=0.1))
    status, out, err = await run(capsys, "complete", "hi", "--address", server.address, *flags)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("rightsize: error: INVALID_ARGUMENT: ") and named in err
    assert not backends.small.requests


async def test_complete_with_a_schema_file_reports_schema_valid(
    start_server: StartServer,
    make_config: MakeConfig,
    backends: Backends,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"]}))
    backends.small.reply = '{"name": "John"}'
    server = await start_server(make_config(), with_scorer=KeyedScorer(default=0.1))
    status, out, err = await run(
        capsys, "complete", "John", "--address", server.address, "--schema", str(schema)
    )
    assert status == 0 and json.loads(out) == {"name": "John"} and "[schema_valid true]" in err
    assert backends.small.requests[-1]["body"]["format"] == {"type": "object", "required": ["name"]}
    status, _, err = await run(capsys, "complete", "x", "--address", server.address, "--schema", "/nope.json")
    assert status == 1 and err.count("\n") == 1 and "--schema /nope.json" in err
