"""`server.replica_id`: the config's value, else $RIGHTSIZE_REPLICA_ID (read where the config is loaded), else
`<hostname>:<bound port>`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from router.config.settings import REPLICA_ID_ENV, load_config
from tests.router.standins import StandIn
from tests.router.support import Backends, config_dict


def _config_file(tmp_path: Path, **server: str) -> Path:
    backends = Backends(StandIn("ollama"), StandIn("openai"))
    config = config_dict(backends)
    backends.small.kill()
    backends.large.kill()
    config["server"].update(server)
    path = tmp_path / "router.yaml"
    path.write_text(json.dumps(config))
    return path


def test_the_replica_id_comes_from_the_config_else_the_environment_else_host_and_port(tmp_path: Path) -> None:
    plain = _config_file(tmp_path)
    assert load_config(plain, environ={}).server.replica_name(50051) == f"{socket.gethostname()}:50051"
    from_env = load_config(plain, environ={REPLICA_ID_ENV: "rightsize-7d9f-abcde"}).server
    assert from_env.replica_name(50051) == "rightsize-7d9f-abcde"
    named = _config_file(tmp_path, replica_id="eu-west-1a")
    assert load_config(named, environ={REPLICA_ID_ENV: "ignored"}).server.replica_name(1) == "eu-west-1a"
