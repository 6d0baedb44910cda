"""A planted provider key and client key never show in any output; log.redact masks stored text."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from router.cli import main
from router.redact import Redactor, RedactSettings, iban_valid, luhn_valid, scrub
from router.rpc.auth import create_key
from tests.router.support import Backends, config_dict, log_section

ROOT = Path(__file__).resolve().parents[3]
PROVIDER_KEY = "sk-PLANTED-provider-7c1e5b2a9d"
PROVIDER_ENV = "RIGHTSIZE_TEST_PLANTED_KEY"


def test_builtin_patterns_mask_checked_numbers_only() -> None:
    redactor = Redactor(RedactSettings(builtin=("email", "phone", "card", "iban"), patterns=(r"ACME-\d+",)))
    text = (
        "mail ann.lee+x@example.co.uk or call +44 20 7946 0958; card 4111 1111 1111 1111, "
        "not 4111 1111 1111 1112; IBAN GB82 WEST 1234 5698 7654 32; ticket ACME-123; order 12345"
    )
    assert redactor.apply(text) == (
        "mail [EMAIL] or call [PHONE]; card [CARD], not 4111 1111 1111 1112; IBAN [IBAN]; "
        "ticket [REDACTED]; order 12345"
    )
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert Redactor(RedactSettings()).apply(text) == text


def test_scrub_masks_secrets_and_bearer_tokens() -> None:
    assert (
        scrub(f"key {PROVIDER_KEY} and authorization: Bearer abcdefgh123", [PROVIDER_KEY])
        == "key *** and authorization: Bearer ***"
    )


@pytest.fixture
def planted_config(tmp_path: Path, backends: Backends) -> tuple[Path, str]:
    client = create_key("acme")
    config = {**config_dict(backends, threshold=1.0), **log_section(tmp_path)}
    config["tiers"]["large"].pop("api_key")
    config["tiers"]["large"]["api_key_env"] = PROVIDER_ENV
    config["server"]["auth"] = {"api_keys": [{"hash": client.hash, "tenant": "acme"}]}
    config["log"].update(store_responses=True, redact={"builtin": ["email"]})
    path = tmp_path / "router.yaml"
    path.write_text(json.dumps(config))
    return path, client.key


def test_planted_keys_appear_in_no_output(
    planted_config: tuple[Path, str], backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    path, client_key = planted_config
    backends.large.status, backends.large.echo_key = 401, True  # the provider echoes the key it got
    env = {**os.environ, PROVIDER_ENV: PROVIDER_KEY, "PYTHONUNBUFFERED": "1"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(path), "--log-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(serve.stderr or ()), daemon=True)
    reader.start()
    try:
        address, metrics_port = _wait_serving(lines, serve)
        client = ["--address", address, "--timeout", "30"]
        assert main(["complete", "write to bob@example.com", "--api-key", client_key, *client]) == 0
        assert main(["complete", "hi", "--tier", "large", "--api-key", client_key, *client]) == 1
        assert main(["route", "hi", "--api-key", client_key + "x", *client]) == 1
        assert main(["route", "hi", "--api-key", client_key, "--metadata", "tenant=globex", *client]) == 1
        cli = capsys.readouterr()
        assert "auth" in cli.err and "UNAUTHENTICATED" in cli.err and "PERMISSION_DENIED" in cli.err
        assert sum(request["path"].endswith("/chat/completions") for request in backends.large.requests) == 1
        assert backends.large.requests[-1]["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        metrics = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
        reader.join(10)
        stdout = serve.stdout.read() if serve.stdout else ""
        for pipe in (serve.stdout, serve.stderr):
            if pipe is not None:
                pipe.close()
    assert main(["logs", "export", "--config", str(path)]) == 0
    exported = capsys.readouterr().out
    assert "write to [EMAIL]" in exported and "bob@example.com" not in exported
    outputs = {
        "server log": "\n".join(lines),
        "client": cli.out + cli.err,
        "metrics": metrics,
        "export": exported,
        "stdout": stdout,
    }
    assert "large tier" in outputs["server log"] and "401" in outputs["server log"]
    for name, text in outputs.items():
        for secret in (PROVIDER_KEY, client_key, client_key[20:]):
            assert secret not in text, f"a planted key shows in the {name}"


def _wait_serving(lines: list[str], serve: subprocess.Popen[str]) -> tuple[str, int]:
    import re

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in lines:
            if match := re.search(r"serving \S+ on (\S+:\d+), metrics on http://\S+:(\d+)", line):
                return match.group(1), int(match.group(2))
        assert serve.poll() is None, "\n".join(lines)
        time.sleep(0.05)
    raise AssertionError("never served:\n" + "\n".join(lines))
