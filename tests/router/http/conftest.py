"""Fixtures for the HTTP door tests: a real server (gRPC and HTTP on loopback, port 0), stand-in tiers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from router.config import RouterConfig, with_server
from tests.router.conftest import Running, StartServer


@dataclass
class Door:
    """A running server and its HTTP door's base URL (http://127.0.0.1:PORT)."""

    running: Running

    @property
    def url(self) -> str:
        assert self.running.server.http is not None
        return f"http://127.0.0.1:{self.running.server.http.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI SDK takes as base_url."""
        return self.url + "/v1"


StartDoor = Callable[..., Any]


@pytest.fixture
def start_door(start_server: StartServer) -> StartDoor:
    """Start a server with `server.http` on 127.0.0.1:0; `server_changes` go to the server section."""

    async def start(config: RouterConfig, *, with_scorer: Any = None, **server_changes: Any) -> Door:
        config = with_server(config, http={"address": "127.0.0.1:0"}, **server_changes)
        return Door(await start_server(config, with_scorer=with_scorer))

    return start


@pytest.fixture
async def door(start_door: StartDoor, make_config: Callable[..., RouterConfig]) -> Door:
    """A door at the global threshold 0.5 with fallback on, the real classifier."""
    return await start_door(make_config(threshold=0.5))
