"""Clients no one here wrote: the official `openai` npm package under Node, and curl reading SSE."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.router.http.conftest import Door
from tests.router.support import SMALL_REPLY

ROOT = Path(__file__).resolve().parents[3]
NODE_CLIENT = Path(__file__).resolve().parent / "node" / "client.cjs"
# `make node-client` installs the lockfile's `openai` here (.ci/run does before the tests).
NODE_MODULES = Path(
    os.environ.get("RIGHTSIZE_NODE_MODULES") or ROOT / ".venv" / "node-openai" / "node_modules"
)


def _require(tool: str, ready: bool, how: str) -> None:
    if ready:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is missing in CI: {how}")
    pytest.skip(f"{tool} is not installed here: {how}")


async def _run(*command: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_the_openai_npm_package_unary_streaming_and_errors(door: Door) -> None:
    node = shutil.which("node")
    _require(
        "node + the openai npm package",
        node is not None and (NODE_MODULES / "openai").is_dir(),
        "make node-client",
    )
    assert node is not None
    output = await _run(node, str(NODE_CLIENT), door.base_url, env={"NODE_PATH": str(NODE_MODULES)})
    result = json.loads(output.strip().splitlines()[-1])
    assert result["content"] == SMALL_REPLY and result["tier"] == "small"
    assert result["id"] == result["requestId"] and result["model"] == "ollama_chat/llama3:8b"
    assert result["usage"]["completion_tokens"] == len(SMALL_REPLY.split())
    assert result["streamed"] == SMALL_REPLY and result["streamFinish"] == "stop"
    assert result["streamUsage"]["completion_tokens"] == len(SMALL_REPLY.split())
    assert result["missing"]["status"] == 404 and result["missing"]["type"] == "not_found_error"


async def test_curl_reads_the_server_sent_events(door: Door) -> None:
    curl = shutil.which("curl")
    _require("curl", curl is not None, "apt-get install curl")
    assert curl is not None
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    output = await _run(
        curl, "-sS", "-N", "-D", "-", "-H", "Content-Type: application/json",
        "--data", json.dumps(body), door.url + "/v1/chat/completions",
    )  # fmt: skip
    head, _, stream = output.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200") and "content-type: text/event-stream" in head.lower()
    assert "x-rightsize-tier: small" in head.lower()
    events = [line.removeprefix("data: ") for line in stream.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == SMALL_REPLY
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(
        SMALL_REPLY.split()
    )
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
