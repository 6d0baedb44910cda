"""Shadow calls go through the same tier stack as the client's calls: embedded gate and circuit breaker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.requestlog import RequestLogStore, open_store
from tests.router.conftest import StartServer
from tests.router.fake_llama_server import REPLY
from tests.router.learning.test_feedback_and_shadow import wait_for_answers
from tests.router.support import SMALL_REPLY, Backends, KeyedScorer, config_dict, log_section, user


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = open_store(f"sqlite:///{tmp_path / 'requestlog' / 'requests.db'}")
    yield opened
    opened.close()


def shadow_config(backends: Backends, tmp_path: Path, **routing: Any) -> dict[str, Any]:
    return {**config_dict(backends, **routing), **log_section(tmp_path), "learning": {"shadow_rate": 1.0}}


async def test_a_shadow_call_to_an_embedded_large_tier_goes_to_its_child(
    start_server: StartServer,
    backends: Backends,
    tmp_path: Path,
    store: RequestLogStore,
    gguf: Path,
    fake_llama: None,
) -> None:
    raw = shadow_config(backends, tmp_path)
    raw["tiers"]["large"] = {"embedded": str(gguf), "timeout": 10}
    running = await start_server(RouterConfig.model_validate(raw), with_scorer=KeyedScorer(default=0.2))

    answer = await running.stub.Complete(pb.CompleteRequest(messages=user("what is 2 + 2?")), timeout=30)
    assert (answer.text, answer.decision.tier) == (SMALL_REPLY, "small")
    large, _ = await wait_for_answers(store, answer.request_id, timeout_s=30)
    # Without the embedded gate the call has no api_base and never reaches the child.
    assert (large.tier, large.response, large.error) == ("large", REPLY, None)


async def test_an_open_circuit_stops_shadow_calls_too(
    start_server: StartServer, backends: Backends, tmp_path: Path, store: RequestLogStore
) -> None:
    raw = shadow_config(backends, tmp_path, breaker={"failures": 1, "open_s": 600})
    scorer = KeyedScorer({"hard one": 0.9}, default=0.2)
    running = await start_server(RouterConfig.model_validate(raw), with_scorer=scorer)
    backends.large.status = 500
    with pytest.raises(grpc.aio.AioRpcError):
        await running.stub.Complete(pb.CompleteRequest(messages=user("hard one")))  # opens large's circuit
    calls_to_large = len(backends.large.requests)

    answer = await running.stub.Complete(pb.CompleteRequest(messages=user("easy one")))
    assert answer.text == SMALL_REPLY
    large, _ = await wait_for_answers(store, answer.request_id)
    assert large.response is None and "circuit open" in (large.error or "")
    assert len(backends.large.requests) == calls_to_large
