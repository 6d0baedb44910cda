"""The gRPC servicer: proto -> domain, call the pipeline, domain -> proto, errors -> status (rpc.status)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc

import router.rpc.convert as convert
from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.metrics import RouterMetrics
from router.recording import RecordingPipeline
from router.rpc.status import report_failure, status_for

T = TypeVar("T")


class RouterService(pb_grpc.RouterServicer):
    """rightsize.v1.Router over a Pipeline."""

    def __init__(self, pipeline: RecordingPipeline, metrics: RouterMetrics):
        self.pipeline = pipeline
        self.metrics = metrics

    async def Route(self, request: pb.RouteRequest, context: grpc.aio.ServicerContext) -> pb.RouteResponse:
        async def route() -> pb.RouteResponse:
            domain = convert.route_request(request)
            return convert.route_response(domain, await self.pipeline.route(domain))

        return await self._unary("Route", context, route)

    async def Complete(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompleteResponse:
        async def complete() -> pb.CompleteResponse:
            completion = await self.pipeline.complete(convert.complete_request(request), _deadline(context))
            return convert.complete_response(completion)

        return await self._unary("Complete", context, complete)

    async def CompleteStream(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CompleteChunk]:
        sent = False
        try:
            chunks = self.pipeline.stream(convert.complete_request(request), _deadline(context))
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield convert.chunk_message(chunk)
                    sent = True
        except Exception as exc:  # the RPC boundary
            if sent:
                # Part of an answer reached the client, so there is no silent fallback: the last message
                # says what went wrong (the status's own text), then the stream ends with that status.
                yield pb.CompleteChunk(error=status_for(exc)[1])
            await self._fail("CompleteStream", context, exc)
        self._count("CompleteStream", grpc.StatusCode.OK)

    async def Feedback(
        self, request: pb.FeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.FeedbackResponse:
        async def feedback() -> pb.FeedbackResponse:
            await self.pipeline.feedback(convert.feedback_request(request))
            return pb.FeedbackResponse()

        return await self._unary("Feedback", context, feedback)

    async def _unary(
        self, method: str, context: grpc.aio.ServicerContext, handler: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            response = await handler()
        except Exception as exc:  # the RPC boundary
            await self._fail(method, context, exc)
        self._count(method, grpc.StatusCode.OK)
        return response

    async def _fail(self, method: str, context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
        """Report `exc` to the client as a status with details (context.abort raises)."""
        code, details = report_failure(method, exc, self.metrics)
        await context.abort(code, details)
        raise AssertionError("unreachable: abort raises")

    def _count(self, method: str, code: grpc.StatusCode) -> None:
        self.metrics.requests.labels(method, code.name).inc()


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline as a time.monotonic() instant (None when it set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
