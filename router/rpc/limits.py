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
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry, Counter, Gauge

from router.config.guards import LimitsSettings, RateLimitSettings
from router.errors import InvalidRequestError, ResourceExhaustedError
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


class CallLimits:
    """`server.limits` as both doors apply them, with one count of calls in flight and one bucket per client.

    `admit()` raises InvalidRequestError (too many messages) or ResourceExhaustedError (rate limit, with
    `retry_after_s`; calls in flight), and counts the call in flight while its context is open.
    """

    def __init__(self, settings: LimitsSettings, registry: CollectorRegistry):
        self.settings = settings
        self.bucket = TokenBucket(settings.rate_limit) if settings.rate_limit else None
        self.in_flight = 0
        self.rejected = Counter(
            "rightsize_rejected", "Router calls refused by a bound, by reason", ["reason"], registry=registry
        )
        Gauge("rightsize_in_flight", "Router calls in flight", registry=registry).set_function(
            lambda: self.in_flight
        )

    @contextlib.contextmanager
    def admit(self, request: Any, client: str) -> Iterator[None]:
        """Check `request` (its `messages`) and `client`'s bucket, then hold a place in flight."""
        messages = getattr(request, "messages", ())
        if len(messages) > self.settings.max_messages:
            self.rejected.labels("max_messages").inc()
            raise InvalidRequestError(
                f"the request holds {len(messages)} messages, over the limit of {self.settings.max_messages}"
            )
        if self.bucket is not None:
            wait_s = self.bucket.take(client or "anonymous")
            if wait_s > 0:
                self.rejected.labels("rate_limit").inc()
                retry_ms = max(1, math.ceil(wait_s * 1000))
                raise ResourceExhaustedError(f"rate limit exceeded: retry in {retry_ms} ms", retry_ms / 1000)
        limit = self.settings.max_concurrent_calls
        if limit is not None and self.in_flight >= limit:
            self.rejected.labels("concurrency").inc()
            raise ResourceExhaustedError(f"server busy: {limit} calls in flight; retry later")
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def default_deadline(self) -> tuple[float, str] | None:
        """(a time.monotonic() instant, the reason) for a call that sent no deadline; None: no default."""
        default_s = self.settings.default_deadline_s
        if default_s is None:
            return None
        reason = f"deadline exceeded: the server's default of {default_s:g} s (the client sent no deadline)"
        return time.monotonic() + default_s, reason


class LimitsInterceptor(PrefixGuardInterceptor):
    """Applies `server.limits` (a CallLimits) to the methods under `guarded_prefix` (the Router service)."""

    def __init__(self, limits: CallLimits, guarded_prefix: str):
        self.limits = limits
        self.guarded_prefix = guarded_prefix

    @contextlib.asynccontextmanager
    async def _guard(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        with contextlib.ExitStack() as admitted:
            try:
                admitted.enter_context(self.limits.admit(request, CLIENT_ID.get()))
            except InvalidRequestError as exc:
                await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, f"{exc}")
            except ResourceExhaustedError as exc:
                if exc.retry_after_s is None:
                    await refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}")
                await _refuse_until(context, round(exc.retry_after_s * 1000))
            yield self._with_default_deadline(context)

    def _with_default_deadline(self, context: grpc.aio.ServicerContext) -> Any:
        default = self.limits.default_deadline()
        if default is None or context.time_remaining() is not None:
            return context
        return DeadlineContext(context, *default)
