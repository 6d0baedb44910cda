"""The request log wired into the real server: one record per call (ok or error), outages, strict mode."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.requestlog import SpillFile, open_store
from tests.router.conftest import StartServer
from tests.router.support import SMALL_REPLY, Backends, KeyedScorer, config_dict, log_section, user

MakeConfig = Callable[..., RouterConfig]


def log_config(backends: Backends, tmp_path: Path, **log: Any) -> RouterConfig:
    raw = {**config_dict(backends), **log_section(tmp_path)}
    raw["log"] = {**raw["log"], **log}
    return RouterConfig.model_validate(raw)


def records_of(config: RouterConfig) -> dict[str, Any]:
    store = open_store(config.log.url)
    try:
        return {record.request_id: record for record in store.iter_records()}
    finally:
        store.close()


async def test_every_ok_call_is_logged_exactly_once_under_concurrent_load(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    config = make_config()
    running = await start_server(config, with_scorer=KeyedScorer(default=0.2))
    ids: dict[str, str] = {}

    async def route(i: int) -> None:
        response = await running.stub.Route(pb.RouteRequest(messages=user(f"route {i}")))
        ids[response.request_id] = "Route"

    async def complete(i: int) -> None:
        response = await running.stub.Complete(pb.CompleteRequest(messages=user(f"complete {i}")))
        ids[response.request_id] = "Complete"

    async def stream(i: int) -> None:
        async for chunk in running.stub.CompleteStream(pb.CompleteRequest(messages=user(f"stream {i}"))):
            if chunk.request_id:
                ids[chunk.request_id] = "CompleteStream"

    calls = [route(i) for i in range(60)] + [complete(i) for i in range(40)] + [stream(i) for i in range(20)]
    await asyncio.gather(*calls)
    await running.server.stop(5)  # the SIGTERM path: drain, then flush the writer

    logged = records_of(config)
    assert len(ids) == 120
    registry = running.server.metrics.registry
    assert registry.get_sample_value("rightsize_request_log_records_total", {"event": "written"}) == 120
    assert {request_id: record.rpc for request_id, record in logged.items()} == ids
    completed = [r for r in logged.values() if r.rpc != "Route"]
    assert all(r.error is None and r.tier == "small" for r in logged.values())
    assert {r.classifier_version for r in logged.values()} == {"fake-1"}
    assert all(r.prompt_tokens and r.completion_tokens and r.total_ms and r.classify_ms for r in completed)
    assert all(r.response is None for r in completed)  # log.store_responses is off by default


async def test_failed_and_invalid_calls_are_logged_with_their_error(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    config = make_config()
    running = await start_server(config, with_scorer=KeyedScorer())
    backends.small.kill()
    backends.large.kill()
    with pytest.raises(grpc.aio.AioRpcError):
        await running.stub.Complete(pb.CompleteRequest(messages=user("nobody answers"), request_id="dead"))
    with pytest.raises(grpc.aio.AioRpcError):
        await running.stub.Route(pb.RouteRequest(request_id="empty"))
    await running.server.stop(1)

    logged = records_of(config)
    assert "all tiers failed" in (logged["dead"].error or "")
    assert logged["dead"].prompt == "nobody answers"
    assert "messages is empty" in (logged["empty"].error or "")


async def test_a_down_store_never_slows_calls_and_spills_every_record(
    start_server: StartServer, backends: Backends, tmp_path: Path
) -> None:
    config = log_config(backends, tmp_path, url="postgresql://u:pw@127.0.0.1:1/log", timeout_ms=500)
    running = await start_server(config, with_scorer=KeyedScorer())
    started = time.perf_counter()
    responses = await asyncio.gather(
        *(running.stub.Complete(pb.CompleteRequest(messages=user(f"q {i}"))) for i in range(20))
    )
    assert time.perf_counter() - started < 3
    assert all(response.text == SMALL_REPLY for response in responses)
    await running.server.stop(1)

    # Nothing was dropped: every record waits in the spill file, ready to replay into a working store.
    replayed: list[str] = []
    SpillFile(config.log.spill_dir).replay(
        lambda batch: replayed.extend(r.request_id for r in batch), batch_size=100
    )
    assert sorted(replayed) == sorted(response.request_id for response in responses)


async def test_strict_mode_has_the_record_stored_before_the_answer(
    start_server: StartServer, backends: Backends, tmp_path: Path
) -> None:
    config = log_config(backends, tmp_path, sync="strict", flush_interval_ms=60_000)
    running = await start_server(config, with_scorer=KeyedScorer())
    response = await running.stub.Complete(pb.CompleteRequest(messages=user("strict")))
    store = open_store(config.log.url)
    try:
        record = store.get(response.request_id)
    finally:
        store.close()
    assert record is not None and record.tier == "small"


# LiteLLM leaves the abandoned stream's aiohttp connection to the garbage collector; collect it here so
# its ResourceWarning is this test's (and ignored), not a random later test's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_a_stream_the_client_abandons_is_logged_once_as_cancelled(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    config = make_config()
    running = await start_server(config, with_scorer=KeyedScorer())
    backends.small.chunk_delay_s = 0.3
    call = running.stub.CompleteStream(pb.CompleteRequest(messages=user("long story"), request_id="gone"))
    async for _ in call:
        call.cancel()
        break
    await asyncio.sleep(0.3)
    await running.server.stop(1)

    gc.collect()
    record = records_of(config)["gone"]
    assert record.rpc == "CompleteStream" and (record.error or "").startswith("cancelled")
    assert record.tier == "small"  # the decision was made before the client left
