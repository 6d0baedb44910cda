"""Fixtures for the router tests: stand-in backends, configs, the real classifier, in-process servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from router._proto import router_pb2_grpc as pb_grpc
from router.backends.llama_child import EmbeddedSpec
from router.config import RouterConfig
from router.rpc.server import RouterServer, create_server
from tests.router.standins import StandIn
from tests.router.support import LARGE_REPLY, MODEL_DIR, SMALL_REPLY, Backends, config_dict, log_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE_LLAMA_MODULE = "tests.router.fake_llama_server"
# LiteLLM 1.82.6 reads pydantic's model_computed_fields off instances, which pydantic >= 2.11 deprecates;
# under the suite's "warnings are errors" that third-party warning would fail every streamed OpenAI call.
LITELLM_PYDANTIC_WARNING = "ignore:Accessing the 'model_.*fields' attribute:DeprecationWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings(LITELLM_PYDANTIC_WARNING))


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    """A file an embedded tier may name (the fake llama server never reads it)."""
    path = tmp_path / "Tiny-Model.Q4.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded tiers run tests/router/fake_llama_server.py in their child instead of llama.cpp."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the child finds the stand-in module
    original = EmbeddedSpec.from_embedded

    def from_embedded(embedded: str, options: object = None) -> EmbeddedSpec:
        spec = original(embedded, options)  # type: ignore[arg-type]
        return EmbeddedSpec(**{**spec.__dict__, "server_module": FAKE_LLAMA_MODULE})

    monkeypatch.setattr(EmbeddedSpec, "from_embedded", staticmethod(from_embedded))


@pytest.fixture
def backends() -> Iterator[Backends]:
    small, large = StandIn("ollama", reply=SMALL_REPLY), StandIn("openai", reply=LARGE_REPLY)
    yield Backends(small, large)
    small.kill()
    large.kill()


@pytest.fixture
def make_config(backends: Backends, tmp_path: Path) -> Callable[..., RouterConfig]:
    def make(**routing: Any) -> RouterConfig:
        return RouterConfig.model_validate({**config_dict(backends, **routing), **log_section(tmp_path)})

    return make


@pytest.fixture(scope="session")
def scorer() -> Any:
    """The shipped classifier (models/default, or RIGHTSIZE_TEST_MODEL_DIR), loaded once."""
    from classifier.scoring import Scorer

    return Scorer.from_path(MODEL_DIR)


@dataclass
class Running:
    server: RouterServer
    address: str
    channel: grpc.aio.Channel
    stub: pb_grpc.RouterStub

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"


StartServer = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_server(request: pytest.FixtureRequest) -> AsyncIterator[StartServer]:
    """Start real gRPC servers on 127.0.0.1:0 (the real classifier unless a scorer is given)."""
    running: list[Running] = []

    async def start(
        config: RouterConfig,
        *,
        with_scorer: Any = None,
        wait_completion: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> Running:
        scorer = with_scorer if with_scorer is not None else request.getfixturevalue("scorer")
        server, port = create_server(config, scorer=scorer, clock=clock)
        await server.start()
        if wait_completion:
            loaded = await asyncio.get_running_loop().run_in_executor(None, server.backend.wait_loaded, 30)
            assert loaded, server.backend.load_error
        address = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(address)
        handle = Running(server, address, channel, pb_grpc.RouterStub(channel))
        running.append(handle)
        return handle

    yield start
    for handle in running:
        await handle.channel.close()
        await handle.server.stop(0)


@pytest.fixture
async def router(start_server: StartServer, make_config: Callable[..., RouterConfig]) -> Running:
    """A server at the global threshold 0.5 with fallback on."""
    return await start_server(make_config(threshold=0.5))
