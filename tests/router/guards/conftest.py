"""Guard tests break backends on purpose; LiteLLM's leftovers from cancelled calls are collected per test."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# A call cancelled by its timeout (or cut by a killed backend) can leave LiteLLM's HTTP coroutine un-awaited
# and aiohttp sessions/connections unclosed; they are reported when garbage-collected. Third-party
# leftovers, not router failures: the tests assert on statuses, answers and the router's own logs.
LITELLM_LEFTOVERS = (
    "ignore:Exception ignored in. <(coroutine object BaseLLMHTTPHandler|socket.socket|function (ClientSession"
    "|Connection|BaseConnector|TCPConnector|_SelectorTransport).__del__):pytest.PytestUnraisableExceptionWarning",
    "ignore:coroutine 'BaseLLMHTTPHandler:RuntimeWarning",
    "ignore:(U|u)nclosed:ResourceWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            for rule in LITELLM_LEFTOVERS:
                item.add_marker(pytest.mark.filterwarnings(rule))


@pytest.fixture(autouse=True)
async def collect_litellm_leftovers() -> AsyncIterator[None]:
    """After the test's servers stopped: close LiteLLM's cached HTTP clients and collect the garbage."""
    yield
    await release_litellm_clients()


async def release_litellm_clients() -> None:
    """Close and forget LiteLLM's cached HTTP clients (bound to this test's loop), then collect garbage."""
    import sys

    litellm = sys.modules.get("litellm")
    # Not while a server's background thread is still importing it (a partial module).
    if litellm is not None and not getattr(litellm.__spec__, "_initializing", False):
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

        await close_litellm_async_clients()
        litellm.in_memory_llm_clients_cache.flush_cache()  # drop what was closed, so it is collected now
    gc.collect()
