"""Wrap a grpc.aio method handler so a guard runs around its behaviour, with the request in hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, NoReturn

import grpc

# Entered before the servicer runs and left once its answer (or stream) ends; it may abort the call, edit
# the request, or yield another context for the servicer to see (e.g. one with a default deadline).
Guard = Callable[[Any, grpc.aio.ServicerContext], AbstractAsyncContextManager[Any]]


async def refuse(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    details: str,
    trailing_metadata: tuple[tuple[str, str | bytes], ...] = (),
) -> NoReturn:
    """End the call with `code` and `details` (context.abort raises)."""
    await context.abort(code, details, trailing_metadata=trailing_metadata)
    raise AssertionError("unreachable: abort raises")


class Undecodable:
    """What a request that does not parse becomes: refused with INVALID_ARGUMENT, not logged as a crash."""

    def __init__(self, error: Exception):
        self.error = error


def lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer` returning Undecodable instead of raising (gRPC would answer UNKNOWN and log a trace)."""
    if deserializer is None or getattr(deserializer, "lenient", False):
        return deserializer

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:  # protobuf's DecodeError and friends: the client's bytes are garbage
            return Undecodable(exc)

    deserialize.lenient = True  # type: ignore[attr-defined]
    return deserialize


async def _refuse_undecodable(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, Undecodable):
        await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "the request message does not parse")


class PrefixGuardInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every method under `guarded_prefix` (the Router service) in the subclass's `_guard`;
    health and reflection are left alone."""

    guarded_prefix: str

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(self.guarded_prefix):
            return handler
        return guard_handler(handler, self._guard)

    def _guard(self, request: Any, context: grpc.aio.ServicerContext) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError


def guard_handler(handler: grpc.RpcMethodHandler, guard: Guard) -> grpc.RpcMethodHandler:
    """`handler` with `guard` around its unary-unary or unary-stream behaviour (others are returned as is)."""
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await _refuse_undecodable(request, context)
            async with guard(request, context) as guarded:
                if not isinstance(guarded, DeadlineContext):
                    return await unary(request, guarded)
                try:
                    async with asyncio.timeout(guarded.time_remaining()):
                        return await unary(request, guarded)
                except TimeoutError:
                    await refuse(context, grpc.StatusCode.DEADLINE_EXCEEDED, guarded.reason)

        return grpc.unary_unary_rpc_method_handler(
            unary_behaviour, lenient(handler.request_deserializer), handler.response_serializer
        )
    if handler.unary_stream is not None:
        stream = handler.unary_stream

        async def stream_behaviour(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await _refuse_undecodable(request, context)
            async with guard(request, context) as guarded:
                responses = aiter(stream(request, guarded))
                while True:
                    # Bounded per message, never across the `yield`: gRPC's own send is not ours to cancel.
                    try:
                        async with asyncio.timeout(_remaining(guarded)):
                            response = await anext(responses, _END)
                    except TimeoutError:
                        await responses.aclose()
                        await refuse(context, grpc.StatusCode.DEADLINE_EXCEEDED, guarded.reason)
                    if response is _END:
                        return
                    yield response

        return grpc.unary_stream_rpc_method_handler(
            stream_behaviour, lenient(handler.request_deserializer), handler.response_serializer
        )
    return handler


_END = object()


def _remaining(context: Any) -> float | None:
    return context.time_remaining() if isinstance(context, DeadlineContext) else None


class DeadlineContext:
    """A servicer context with a deadline the client did not send: `time_remaining()` counts down to it.

    `guard_handler` also enforces it: a unary call still running at `deadline` (a time.monotonic()
    instant) is aborted with DEADLINE_EXCEEDED, and so is a stream whose next message is not ready by then.
    """

    def __init__(self, context: grpc.aio.ServicerContext, deadline: float, reason: str):
        self._context = context
        self.deadline = deadline
        self.reason = reason

    def time_remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
