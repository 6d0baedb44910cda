"""Live config reload against a real server on port 0: edits under load, invalid files, restart-only keys."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.config import RouterConfig
from router.config.edit import write_atomically
from router.config.reload import ConfigSource, keep_running, restart_only_changes
from router.rpc.server import RouterServer, create_server
from tests.router.standins import StandIn
from tests.router.support import LARGE_REPLY, TASK_PROMPT, Backends, KeyedScorer, config_dict, user
from tests.router.waiting import until

POLL_S = 0.05  # the watcher's poll in these tests (0.5 s served): they wait on polls, not on time


@dataclass
class Served:
    server: RouterServer
    stub: pb_grpc.RouterStub
    channel: grpc.aio.Channel


def write_config(path: Path, config: dict[str, Any], *, atomic: bool = True) -> None:
    text = json.dumps(config, indent=2)  # JSON is YAML
    if atomic:
        write_atomically(path, text)
    else:
        path.write_text(text)


@pytest.fixture
async def serve_file() -> AsyncIterator[Callable[..., Any]]:
    """Start a server from a config file it watches; the classifier scores every prompt 0.6."""
    started: list[tuple[RouterServer, grpc.aio.Channel]] = []

    async def start(path: Path, scorer: Any = None) -> Served:
        source = ConfigSource(path)
        server, port = create_server(source.load(), scorer=scorer or KeyedScorer(default=0.6), source=source)
        assert server.reloader is not None
        server.reloader.poll_interval_s = POLL_S
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return Served(server, pb_grpc.RouterStub(channel), channel)

    yield start
    for server, channel in started:
        await channel.close()
        await server.stop(0)


def reloads(server: RouterServer, result: str) -> float:
    value = server.metrics.registry.get_sample_value("rightsize_config_reloads_total", {"result": result})
    return value or 0.0


async def route(stub: pb_grpc.RouterStub, **metadata: str) -> pb.Decision:
    response = await stub.Route(pb.RouteRequest(messages=user(TASK_PROMPT), metadata=metadata), timeout=5)
    return response.decision


async def test_rewriting_the_threshold_under_load_flips_decisions_within_2s_and_fails_no_call(
    tmp_path: Path, backends: Backends, serve_file: Callable[..., Any]
) -> None:
    path = tmp_path / "router.yaml"
    write_config(path, config_dict(backends, threshold=0.5))
    served = await serve_file(path)
    server, stub = served.server, served.stub
    seen: list[tuple[float, float, str, float, str]] = []  # (sent, answered, tier, threshold, reason)
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                sent = time.monotonic()
                decision = await route(stub, tenant="acme")
                seen.append((sent, time.monotonic(), decision.tier, decision.threshold, decision.reason))
            except grpc.aio.AioRpcError as exc:
                failures.append(exc)

    def new_answers() -> list[tuple[float, float, str, float, str]]:
        return [s for s in seen if s[3] == 0.7]

    def sent_after_first_new() -> list[tuple[float, float, str, float, str]]:
        first = min(s[1] for s in new_answers())
        return [s for s in seen if s[0] > first]

    clients = [asyncio.create_task(client()) for _ in range(12)]
    await until(lambda: len(seen) >= 24)  # every client is under way
    edited = time.monotonic()
    override = {"metadata": {"tenant": "acme"}, "threshold": 0.7}
    write_config(path, config_dict(backends, threshold=0.5, overrides=[override]), atomic=False)
    await until(lambda: bool(new_answers()), timeout_s=3)
    await until(lambda: len(sent_after_first_new()) >= 24)
    stop.set()
    await asyncio.gather(*clients)

    assert not failures
    before = [s for s in seen if s[1] < edited]
    after = new_answers()
    assert before and {(s[2], s[4]) for s in before} == {("large", "global threshold 0.5")}
    assert min(s[1] for s in after) - edited < 2.0
    assert {(s[2], s[4]) for s in after} == {("small", "override[0] tenant=acme threshold=0.7")}
    # Atomic: once the new config answered, calls sent later all see it.
    assert all(s[3] == 0.7 for s in sent_after_first_new())
    assert reloads(server, "applied") == 1
    other = await route(stub, tenant="other")
    assert (other.tier, other.reason) == ("large", "global threshold 0.5")


async def test_a_tier_api_base_change_reaches_the_backend(
    tmp_path: Path, backends: Backends, serve_file: Callable[..., Any]
) -> None:
    path = tmp_path / "router.yaml"
    config = config_dict(backends, threshold=0.5)
    write_config(path, config)
    served = await serve_file(path)
    server, stub = served.server, served.stub
    assert await asyncio.get_running_loop().run_in_executor(None, server.backend.wait_loaded, 30)
    replacement = StandIn("openai", reply="answer from the replacement large model")
    try:
        request = pb.CompleteRequest(messages=user(TASK_PROMPT), force_tier="large")
        assert (await stub.Complete(request, timeout=10)).text == LARGE_REPLY
        config["tiers"]["large"]["api_base"] = replacement.url
        config["tiers"]["large"]["model"] = "openai/gpt-4o-mini"
        write_config(path, config)
        edited = time.monotonic()
        await until(lambda: reloads(server, "applied") == 1, timeout_s=3)
        response = await stub.Complete(request, timeout=10)
        assert response.text == "answer from the replacement large model"
        assert response.model == "openai/gpt-4o-mini" and response.decision.model == "openai/gpt-4o-mini"
        assert time.monotonic() - edited < 2.0
        assert replacement.requests
    finally:
        replacement.kill()


async def test_an_invalid_edit_keeps_the_old_config_logs_one_line_and_keeps_serving(
    tmp_path: Path, backends: Backends, serve_file: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "router.yaml"
    write_config(path, config_dict(backends, threshold=0.5))
    served = await serve_file(path)
    server, stub = served.server, served.stub
    caplog.set_level(logging.INFO, logger="router.config.reload")

    reloader = server.reloader
    assert reloader is not None
    write_config(path, config_dict(backends, threshold=1.7))
    await until(lambda: reloads(server, "invalid") == 1)
    polls = reloader.polls
    await until(lambda: reloader.polls >= polls + 3)  # three more polls: reported once, not on every poll
    path.write_text("routing: [this is: not {valid yaml\n")
    await until(lambda: reloads(server, "invalid") == 2)
    polls = reloader.polls
    await until(lambda: reloader.polls >= polls + 3)

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    assert "routing.threshold" in errors[0] and "less than or equal to 1" in errors[0]
    assert "still serving the previous config" in errors[0] and str(path) in errors[0]
    assert "not valid YAML" in errors[1]
    assert all("\n" not in message for message in errors)
    assert reloads(server, "invalid") == 2 and reloads(server, "applied") == 0
    assert server.metrics.registry.get_sample_value("rightsize_config_valid") == 0
    decision = await route(stub)
    assert (decision.tier, decision.threshold) == ("large", 0.5)
    health = health_pb2_grpc.HealthStub(served.channel)
    status = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING

    write_config(path, config_dict(backends, threshold=0.65))  # fixed: applied again
    await until(lambda: reloads(server, "applied") == 1)
    decision = await route(stub)
    assert (decision.tier, decision.threshold) == ("small", 0.65)
    assert server.metrics.registry.get_sample_value("rightsize_config_valid") == 1


async def test_restart_only_keys_are_kept_and_reported_while_live_keys_apply(
    tmp_path: Path, backends: Backends, serve_file: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "router.yaml"
    config = config_dict(backends, threshold=0.5)
    write_config(path, config)
    served = await serve_file(path)
    server, stub = served.server, served.stub
    caplog.set_level(logging.INFO, logger="router.config.reload")
    config["server"]["grace_period_s"] = 7
    config["scoring"] = {"max_batch": 4}
    config["routing"]["threshold"] = 0.9
    write_config(path, config)
    await until(lambda: reloads(server, "applied") == 1)
    assert (await route(stub)).threshold == 0.9
    live = server.pipeline.config
    assert live.server.grace_period_s == 2 and live.scoring.max_batch == 32
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("server.grace_period_s changed; it takes effect only after a restart" in w for w in warnings)
    assert any("scoring.max_batch changed" in w for w in warnings)


async def test_a_forced_reload_sighup_rereads_an_unchanged_file(
    tmp_path: Path, backends: Backends, serve_file: Callable[..., Any]
) -> None:
    path = tmp_path / "router.yaml"
    write_config(path, config_dict(backends, threshold=0.5))
    server = (await serve_file(path)).server
    assert server.reloader is not None
    assert await server.reloader.reload() == "unchanged"
    assert await server.reloader.reload(force=True) == "unchanged"  # valid, same live settings
    assert reloads(server, "unchanged") == 2


def test_restart_only_changes_names_keys_and_keep_running_keeps_them(backends: Backends) -> None:
    running = RouterConfig.model_validate(config_dict(backends, threshold=0.5))
    changed = config_dict(backends, threshold=0.8)
    changed["server"]["address"] = "127.0.0.1:6000"
    loaded = RouterConfig.model_validate(changed)
    assert restart_only_changes(running, loaded) == ["server.address"]
    kept = keep_running(running, loaded)
    assert kept.server == running.server and kept.routing.threshold == 0.8


def test_an_embedded_tier_change_needs_a_restart_and_keeps_the_running_tier(backends: Backends) -> None:
    raw = config_dict(backends, threshold=0.5)
    raw["tiers"]["small"] = {"embedded": "smollm2-135m"}
    running = RouterConfig.model_validate(raw)
    raw["tiers"]["small"] = {"embedded": "smollm2-360m"}
    raw["tiers"]["large"]["timeout"] = 3
    loaded = RouterConfig.model_validate(raw)
    assert restart_only_changes(running, loaded) == ["tiers.small.embedded"]
    kept = keep_running(running, loaded)
    assert kept.tiers.small == running.tiers.small and kept.tiers.large.timeout == 3
