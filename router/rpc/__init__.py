"""The gRPC edge: the server and its composition, the servicer, conversions, and the call guards.

The server is imported on first use, so a client-side import (router.rpc.tls, router.rpc.auth) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.rpc.server import RouterServer, create_server, serve

__all__ = ["RouterServer", "create_server", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("router.rpc.server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
