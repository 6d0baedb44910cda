"""Soak under faults: 64 clients; the small stand-in is killed and restarted twice, the large one slows.

CI runs 8 s; `RIGHTSIZE_SOAK_S=60 pytest tests/soak` runs the full minute. It reports OK, fallback and error
counts, and asserts no crash (no INTERNAL/UNKNOWN status, no ERROR log record, health SERVING throughout)
and that every answered call is in the request log.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import time
from collections.abc import Callable

import grpc
import pytest

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.config import RouterConfig
from router.config.settings import BreakerSettings
from router.requestlog.store import open_store
from router.rpc.server import create_server
from tests.router.conftest import LITELLM_PYDANTIC_WARNING, Running
from tests.router.guards.conftest import LITELLM_LEFTOVERS, release_litellm_clients
from tests.router.support import Backends, KeyedScorer, user
from tests.router.waiting import SERVING, health

pytestmark = [pytest.mark.filterwarnings(rule) for rule in (LITELLM_PYDANTIC_WARNING, *LITELLM_LEFTOVERS)]
SOAK_S = float(os.environ.get("RIGHTSIZE_SOAK_S", "8"))
CLIENTS = 64
CRASHES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


async def _client(
    server: Running, stop_at: float, seed: int, counts: collections.Counter[str], answered: list[str]
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        request = pb.CompleteRequest(messages=user(f"question {rng.random()}"))
        try:
            if rng.random() < 0.3:
                chunks = [chunk async for chunk in server.stub.CompleteStream(request, timeout=5)]
                fallback, request_id = chunks[0].fallback, chunks[0].request_id
            else:
                response = await server.stub.Complete(request, timeout=5)
                fallback, request_id = response.fallback, response.request_id
            counts["fallback" if fallback else "ok"] += 1
            answered.append(request_id)
        except grpc.aio.AioRpcError as exc:
            counts[f"error:{exc.code().name}"] += 1
            await asyncio.sleep(0.05)


async def _chaos(backends: Backends, server: Running, seconds: float, serving: list[bool]) -> None:
    """Kill and restart the small tier twice; slow the large one for the middle half."""
    steps = [
        (0.15, backends.small.kill),
        (0.35, backends.small.restart),
        (0.25, lambda: setattr(backends.large, "delay_s", 0.3)),
        (0.55, backends.small.kill),
        (0.75, lambda: setattr(backends.large, "delay_s", 0.0)),
        (0.80, backends.small.restart),
    ]
    started = time.monotonic()
    for at, action in sorted(steps, key=lambda step: step[0]):
        while time.monotonic() - started < at * seconds:
            serving.append(await health(server.channel, "") == SERVING)
            await asyncio.sleep(0.1)
        action()


async def test_soak_with_backend_faults_has_no_crash_and_loses_no_log_row(
    make_config: Callable[..., RouterConfig],
    backends: Backends,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(breaker=BreakerSettings(failures=3, open_s=1.0).model_dump())
    small = config.tiers.small.model_copy(update={"timeout": 1.0})
    config = config.model_copy(update={"tiers": config.tiers.model_copy(update={"small": small})})
    router, port = create_server(config, scorer=KeyedScorer())
    await router.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        server = Running(router, f"127.0.0.1:{port}", channel, pb_grpc.RouterStub(channel))
        await _soak(server, config, backends, caplog)
    finally:
        await channel.close()
        await router.stop(1)
        await release_litellm_clients()  # under this module's warning filters


async def _soak(
    server: Running, config: RouterConfig, backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    await server.stub.Complete(pb.CompleteRequest(messages=user("warm up")), timeout=30)

    counts: collections.Counter[str] = collections.Counter()
    answered: list[str] = []
    serving: list[bool] = []
    stop_at = time.monotonic() + SOAK_S
    await asyncio.gather(
        _chaos(backends, server, SOAK_S, serving),
        *(_client(server, stop_at, seed, counts, answered) for seed in range(CLIENTS)),
    )
    print(f"\nsoak {SOAK_S:g} s, {CLIENTS} clients: {dict(sorted(counts.items()))}")

    crashes = {
        name: count
        for name, count in counts.items()
        if name.split(":")[-1] in {code.name for code in CRASHES}
    }
    assert not crashes, crashes
    assert counts["ok"] > 0 and counts["fallback"] > 0
    assert all(serving) and await health(server.channel, "") == SERVING
    # The router's and gRPC's own records (asyncio reports LiteLLM's unclosed aiohttp sessions at ERROR).
    assert not [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and record.name.startswith(("router", "grpc"))
    ]

    store = open_store(config.log.url)
    try:
        deadline = time.monotonic() + 15
        missing = set(answered)
        while missing and time.monotonic() < deadline:
            missing = {request_id for request_id in missing if store.get(request_id) is None}
            await asyncio.sleep(0.2)
    finally:
        store.close()
    assert not missing, f"{len(missing)} answered calls are not in the request log"
