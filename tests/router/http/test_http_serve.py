"""`server.http` in the config and in `rightsize serve`: off by default, on in the shipped config."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import openai
import pytest

from router.config import RouterConfig, load_config, with_server
from router.errors import ConfigError
from tests.router.serve_process import ServeProcess
from tests.router.support import SMALL_REPLY, Backends, config_dict, log_section


def test_the_door_is_off_by_default_and_on_in_the_shipped_config() -> None:
    assert (
        RouterConfig.model_validate({"tiers": {"small": {"model": "a"}, "large": {"model": "b"}}}).server.http
        is None
    )
    shipped = load_config(environ={}).server.http
    assert shipped is not None and shipped.address == "127.0.0.1:8080"
    with pytest.raises(ConfigError, match=r"server\.http\.address.*HOST:PORT"):
        with_server(load_config(environ={}), http={"address": "8080"})


def test_rightsize_serve_answers_openai_calls_and_drains_on_sigterm(
    backends: Backends, tmp_path: Path
) -> None:
    config = {**config_dict(backends), **log_section(tmp_path)}
    config["server"]["http"] = {"address": "127.0.0.1:0"}
    path = tmp_path / "router.yaml"
    path.write_text(json.dumps(config))
    serve = ServeProcess(path)
    try:
        url = serve.wait_for_line(r"OpenAI-compatible HTTP on (http://127\.0\.0\.1:\d+/v1)").group(1)
        serve.wait_for_line("completion backend ready")
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Hi"}])
        client.close()
        assert answer.choices[0].message.content == SMALL_REPLY
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(20) == 0
    finally:
        serve.stop()
