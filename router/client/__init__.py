"""A typed Python client for backends: Route, Complete (into pydantic models), CompleteStream, Feedback.

    from router.client import RouterClient
    with RouterClient("router:50051", api_key=...) as client:
        person = client.complete("Turn this into JSON: 'John is 35'", response_model=Person)

Names load lazily, so that importing `router.client._channel` (as the CLI does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RouterClient": "_client",
    "AsyncRouterClient": "_client",
    "response_format_for": "_requests",
    "parse_answer": "_requests",
    "tool": "_requests",
    "Messages": "_requests",
    "RouterClientError": "_errors",
    "RouterCallError": "_errors",
    "InvalidRequestError": "_errors",
    "NotFoundError": "_errors",
    "AuthError": "_errors",
    "RateLimitedError": "_errors",
    "UnavailableError": "_errors",
    "DeadlineExceededError": "_errors",
    "AnswerValidationError": "_errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'router.client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"router.client.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
