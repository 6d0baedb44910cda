"""`rightsize serve --config FILE` as a real process: decisions follow edits of FILE, garbage and SIGHUP."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.config.edit import write_atomically
from tests.router.serve_process import ServeProcess
from tests.router.support import HARD_PROMPT, Backends, config_dict, user
from tests.router.test_serve_process import wait_serving


@pytest.fixture
def served(tmp_path: Path, backends: Backends) -> Iterator[tuple[ServeProcess, Path, dict[str, Any]]]:
    config = config_dict(backends, threshold=1.0)  # nothing reaches 1.0: all small
    path = tmp_path / "router.yaml"
    path.write_text(json.dumps(config))
    serve = ServeProcess(path)
    yield serve, path, config
    if serve.process.poll() is None:
        serve.process.send_signal(signal.SIGTERM)
        try:
            serve.process.wait(10)
        except subprocess.TimeoutExpired:
            serve.process.kill()
    serve.close()


def tier_within(stub: pb_grpc.RouterStub, tier: str, timeout_s: float) -> float:
    """Seconds until Route answers `tier` (AssertionError after `timeout_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if stub.Route(pb.RouteRequest(messages=user(HARD_PROMPT)), timeout=5).decision.tier == tier:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"decisions did not become {tier!r} within {timeout_s} s")


def test_edits_garbage_and_sighup_against_a_running_process(
    served: tuple[ServeProcess, Path, dict[str, Any]],
) -> None:
    serve, path, config = served
    address = serve.wait_for_line(r"serving rightsize\.v1\.Router on (\S+:\d+)").group(1)
    with grpc.insecure_channel(address) as channel:
        wait_serving(channel, "")
        stub = pb_grpc.RouterStub(channel)
        assert tier_within(stub, "small", 1) < 1

        config["routing"]["threshold"] = 0.0  # everything large
        write_atomically(path, json.dumps(config))
        assert tier_within(stub, "large", 3) < 2.0

        path.write_text("routing: {threshold: [garbage\n")
        serve.wait_for_line(r"config reload rejected, still serving the previous config: .*not valid YAML", 5)
        time.sleep(1.0)
        decision = stub.Route(pb.RouteRequest(messages=user(HARD_PROMPT)), timeout=5).decision
        assert (decision.tier, decision.threshold) == ("large", 0.0)
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        assert sum("config reload rejected" in line for line in serve.lines) == 1

        serve.process.send_signal(signal.SIGHUP)  # an invalid file stays rejected on a forced reload too
        serve.wait_for_line(r"SIGHUP received: reloading", 5)
        time.sleep(0.5)
        assert serve.process.poll() is None
        assert sum("config reload rejected" in line for line in serve.lines) == 2

        config["routing"]["threshold"] = 1.0
        write_atomically(path, json.dumps(config))
        assert tier_within(stub, "small", 3) < 2.0
