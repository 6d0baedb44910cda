"""Helpers of the guard tests: a config with server settings replaced, and a status assertion."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from router.config import RouterConfig


def with_server(config: RouterConfig, **changes: Any) -> RouterConfig:
    """`config` with some `server` fields replaced (settings objects, already valid)."""
    return config.model_copy(update={"server": config.server.model_copy(update=changes)})


async def status_of(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error `call` fails with (the test fails when it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value
