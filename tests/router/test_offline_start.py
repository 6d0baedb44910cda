"""Offline start: `rightsize serve` and the client CLI never reach for the network (LiteLLM's price map).

Every proxy variable points at a trap on loopback that counts connections, so any attempt to fetch
anything from outside shows up as a hit (and, on a machine without network, as a wait).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.router.support import SMALL_REPLY, Backends, config_dict
from tests.router.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class ProxyTrap:
    """A TCP listener that accepts and drops every connection, counting them."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.hits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.hits += 1
            connection.close()

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def trap() -> Iterator[ProxyTrap]:
    proxy = ProxyTrap()
    yield proxy
    proxy.close()


def offline_env(trap: ProxyTrap) -> dict[str, str]:
    """The test's environment without the cost-map switch (the code must set it), all traffic to the trap."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "LITELLM_LOCAL_MODEL_COST_MAP" and not key.lower().endswith("_proxy")
    }
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
    proxies = dict.fromkeys(names, trap.url)
    loopback = "127.0.0.1,localhost"  # the stand-ins and the router itself are reached directly
    return {
        **env,
        **proxies,
        "NO_PROXY": loopback,
        "no_proxy": loopback,
        "PYTHONUNBUFFERED": "1",
        "PYTHONWARNINGS": "ignore",
    }


def rightsize(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_trap_sees_a_bare_litellm_import_fetch_its_price_map(trap: ProxyTrap) -> None:
    # The control for the test below: without LITELLM_LOCAL_MODEL_COST_MAP, importing LiteLLM goes online.
    subprocess.run(
        [sys.executable, "-c", "import litellm"],
        env=offline_env(trap),
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert trap.hits >= 1


def test_serve_and_the_cli_start_without_touching_the_network(
    trap: ProxyTrap, backends: Backends, tmp_path: Path
) -> None:
    env = offline_env(trap)
    started = time.monotonic()
    assert rightsize(env, "--help").returncode == 0
    assert time.monotonic() - started < 5  # nothing heavy at import time

    path = tmp_path / "router.yaml"
    path.write_text(json.dumps(config_dict(backends)))
    serve = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip() for line in serve.stderr or ()))
    reader.start()
    try:
        started = time.monotonic()
        # serve opens the port once LiteLLM is imported: "serving" is logged after "backend ready".
        wait_until(lambda: any("serving rightsize.v1.Router on" in line for line in lines), 60)
        assert any("completion backend ready" in line for line in lines)
        ready_s = time.monotonic() - started
        address = next(
            match.group(1)
            for line in lines
            if (match := re.search(r"serving rightsize\.v1\.Router on (\S+:\d+)", line))
        )
        completed = rightsize(env, "complete", "--address", address, "hello")
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.strip() == SMALL_REPLY
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
        serve.wait(10)
        reader.join(10)
        if serve.stderr is not None:
            serve.stderr.close()
    assert trap.hits == 0, "\n".join(lines)
    # LiteLLM's import is ~3 s on an idle machine; a fetch timing out would add its own 5 s timeout and more.
    assert ready_s < 30
    assert f"tier small: live: ollama_chat/llama3:8b at {backends.small.url}" in "\n".join(lines)
