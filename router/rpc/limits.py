"""Bounds on Router calls: messages per request, a per-key rate limit, calls in flight, a default deadline.

Refusals are immediate, never queued:
- more chat messages than `max_messages`: INVALID_ARGUMENT;
- an empty token bucket: RESOURCE_EXHAUSTED saying when a token is back twice over: the standard rich
  error detail (a google.rpc.Status holding a google.rpc.RetryInfo, in the `grpc-status-details-bin`
  trailer; `grpc_status.rpc_status.from_call` decodes it) and the plain trailer `retry-after-ms`;
- `max_concurrent_calls` already in flight: RESOURCE_EXHAUSTED.
A call without a client deadline gets `default_deadline_s` (see router.rpc.interceptors.DeadlineContext).
The largest received message (`max_message_bytes`) is gRPC's own option: see `grpc_options()`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry, Counter, Gauge

from router.config.guards import LimitsSettings, RateLimitSettings
from router.rpc.auth import CLIENT_ID
from router.rpc.interceptors import DeadlineContext, PrefixGuardInterceptor, refuse

RETRY_AFTER_KEY = "retry-after-ms"
_MAX_BUCKETS = 10_000  # clients tracked at once; idle full buckets are forgotten first


def grpc_options(limits: LimitsSettings) -> list[tuple[str, Any]]:
    """Server channel options enforcing the message size (gRPC answers RESOURCE_EXHAUSTED beyond it)."""
    return [("grpc.max_receive_message_length", limits.max_message_bytes)]


class TokenBucket:
    """Per-client token buckets; `take()` returns 0 when a call may go, else seconds until it may."""

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic):
        self.rate = settings.per_second
        self.burst = float(settings.burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str) -> float:
        """Take one token for `client`: 0.0 when granted, else the wait in seconds (> 0)."""
        now = self.clock()
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._remember(client, tokens - 1.0, now)
            return 0.0
        self._remember(client, tokens, now)
        return (1.0 - tokens) / self.rate

    def _remember(self, client: str, tokens: float, now: float) -> None:
        if client not in self._buckets and len(self._buckets) >= _MAX_BUCKETS:
            full = [
                name
                for name, (held, at) in self._buckets.items()
                if held + (now - at) * self.rate >= self.burst
            ]
            for name in full or list(self._buckets)[: _MAX_BUCKETS // 10]:
                del self._buckets[name]
        self._buckets[client] = (tokens, now)


def retry_status(retry_ms: int) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED as a google.rpc.Status whose RetryInfo asks to wait `retry_ms` milliseconds."""
    delay = duration_pb2.Duration(seconds=retry_ms // 1000, nanos=retry_ms % 1000 * 1_000_000)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED,
        message=f"rate limit exceeded: retry in {retry_ms} ms",
        details=[detail],
    )


async def _refuse_until(context: grpc.aio.ServicerContext, retry_ms: int) -> NoReturn:
    status = rpc_status.to_status(retry_status(retry_ms))
    await refuse(
        context,
        status.code,
        status.details,
        trailing_metadata=(*status.trailing_metadata, (RETRY_AFTER_KEY, str(retry_ms))),
    )


class LimitsInterceptor(PrefixGuardInterceptor):
    """Applies `server.limits` to the methods under `guarded_prefix` (the Router service)."""

    def __init__(self, settings: LimitsSettings, guarded_prefix: str, registry: CollectorRegistry):
        self.settings = settings
        self.guarded_prefix = guarded_prefix
        self.bucket = TokenBucket(settings.rate_limit) if settings.rate_limit else None
        self.in_flight = 0
        self.rejected = Counter(
            "rightsize_rejected", "Router calls refused by a bound, by reason", ["reason"], registry=registry
        )
        Gauge("rightsize_in_flight", "Router calls in flight", registry=registry).set_function(
            lambda: self.in_flight
        )

    @contextlib.asynccontextmanager
    async def _guard(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        messages = getattr(request, "messages", ())
        if len(messages) > self.settings.max_messages:
            self.rejected.labels("max_messages").inc()
            await refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request holds {len(messages)} messages, over the limit of {self.settings.max_messages}",
            )
        if self.bucket is not None:
            wait_s = self.bucket.take(CLIENT_ID.get() or "anonymous")
            if wait_s > 0:
                self.rejected.labels("rate_limit").inc()
                await _refuse_until(context, max(1, math.ceil(wait_s * 1000)))
        limit = self.settings.max_concurrent_calls
        if limit is not None and self.in_flight >= limit:
            self.rejected.labels("concurrency").inc()
            await refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy: {limit} calls in flight; retry later",
            )
        self.in_flight += 1
        try:
            yield self._with_default_deadline(context)
        finally:
            self.in_flight -= 1

    def _with_default_deadline(self, context: grpc.aio.ServicerContext) -> Any:
        default_s = self.settings.default_deadline_s
        if default_s is None or context.time_remaining() is not None:
            return context
        return DeadlineContext(
            context,
            time.monotonic() + default_s,
            f"deadline exceeded: the server's default of {default_s:g} s (the client sent no deadline)",
        )
