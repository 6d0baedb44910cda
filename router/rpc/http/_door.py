"""The OpenAI-compatible HTTP door (aiohttp): OpenAI JSON -> the gRPC contract's messages -> the pipeline.

Each call takes the gRPC path's steps in the same order and with the same shared objects: parse, the API
key check (router.rpc.auth.KeyCheck), the limits (router.rpc.limits.CallLimits: one in-flight count and
one token bucket per client for both doors), the default deadline, then router.rpc.convert and the
recording pipeline. Errors become statuses through router.rpc.status and then HTTP statuses through its
mirror table. A client that disconnects cancels its handler, and so the backend call
(`handler_cancellation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from aiohttp import web

import router.rpc.convert as convert
from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.config.settings import HttpSettings
from router.errors import DeadlineExceededError, ResourceExhaustedError, RouterError
from router.metrics import RouterMetrics
from router.recording import RecordingPipeline
from router.redact import scrub
from router.rpc.auth import KeyCheck, bearer_key
from router.rpc.http import _openai as openai
from router.rpc.limits import CallLimits
from router.rpc.status import HTTP_BY_STATUS, HTTP_TOO_LARGE, HttpError, report_failure

T = TypeVar("T")
HEADER_PREFIX = "x-rightsize-"
REQUEST_ID_HEADER = (
    HEADER_PREFIX + "request-id"
)  # also read from the request, like CompleteRequest.request_id
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# (service name) -> SERVING?, or None when the service is unknown: the gRPC health servicer's own answer.
Probe = Callable[[str], Awaitable[bool | None]]


@dataclass(frozen=True)
class DoorParts:
    """What the door serves with; built by router.rpc.server.create_server, shared with the gRPC server."""

    settings: HttpSettings
    pipeline: RecordingPipeline
    config: Callable[[], RouterConfig]  # the live config (tiers' model ids after a reload)
    metrics: RouterMetrics
    key_check: KeyCheck | None  # None: server.auth has no keys
    limits: CallLimits
    probe: Probe
    ready_service: str  # the health service /readyz reports by default
    max_body_bytes: int
    grace_s: float
    secrets: tuple[str, ...] = ()  # scrubbed from every error text


def bind(address: str) -> socket.socket:
    """A listening TCP socket on `address` (HOST:PORT; port 0: any); RouterError when it cannot listen."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(128)
    except OSError as exc:
        raise RouterError(f"cannot listen on {address} (server.http.address): {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


class HttpDoor:
    """A bound, not yet started HTTP server; `start()` serves on the running loop, `stop()` drains."""

    def __init__(self, parts: DoorParts, sock: socket.socket, ssl_context: ssl.SSLContext | None = None):
        self.parts = parts
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.ssl_context = ssl_context  # None: plain HTTP
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "http" if self.ssl_context is None else "https"

    async def start(self) -> None:
        app = web.Application(client_max_size=self.parts.max_body_bytes, middlewares=[_openai_shaped_errors])
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/feedback", self.feedback)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=self.parts.grace_s
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock, ssl_context=self.ssl_context).start()

    async def stop(self) -> None:
        """Stop listening, let in-flight calls finish (at most `grace_s`), close."""
        if self._runner is not None:
            await self._runner.cleanup()
        self.sock.close()

    # --- endpoints ---------------------------------------------------------------------------------------
    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        request_id = request.headers.get(REQUEST_ID_HEADER) or convert.new_request_id()
        headers = {REQUEST_ID_HEADER: _header_value(request_id)}
        method = "Complete"
        try:
            body = openai.parse(openai.ChatCompletionBody, await self._read(request))
            method = "CompleteStream" if body.stream else "Complete"
            config = self.parts.config()
            message = openai.complete_request(body, config, request_id)
            async with self._admitted(request, message) as deadline:
                message.force_tier = openai.force_tier(body.model, config)
                if body.stream:
                    include_usage = bool(body.stream_options and body.stream_options.include_usage)
                    return await self._stream(request, message, deadline, headers, include_usage)
                completion = await _bounded(
                    deadline,
                    self.parts.pipeline.complete(convert.complete_request(message), _instant(deadline)),
                )
        except ConnectionResetError:
            raise  # the client went away mid-stream: nobody to answer
        except Exception as exc:  # the HTTP boundary
            return self._error(method, exc, headers)
        response = convert.complete_response(completion)
        self._count(method)
        headers.update(_decision_headers(response.decision, response.fallback, response.escalated))
        return web.json_response(openai.completion_json(response, int(time.time())), headers=headers)

    async def _stream(
        self,
        request: web.Request,
        message: pb.CompleteRequest,
        deadline: tuple[float, str] | None,
        headers: dict[str, str],
        include_usage: bool,
    ) -> web.StreamResponse:
        """SSE: the decision headers go out with the first chunk, so a failure before it is a plain error."""
        chunks = self.parts.pipeline.stream(convert.complete_request(message), _instant(deadline))
        async with contextlib.aclosing(chunks):
            chunk = await _bounded(deadline, anext(chunks, None))
            shaper = openai.ChunkShaper(int(time.time()), include_usage)
            response = web.StreamResponse(headers={**headers, **SSE_HEADERS})
            if chunk is not None:
                head = convert.chunk_message(chunk)
                # A buffered cascade stream knows its verdict before the first chunk; otherwise false.
                escalated = chunk.escalation.escalated
                response.headers.update(_decision_headers(head.decision, head.fallback, escalated))
            await response.prepare(request)
            try:
                while chunk is not None:
                    await _send(response, shaper.events(convert.chunk_message(chunk)))
                    chunk = await _bounded(deadline, anext(chunks, None))
            except (ConnectionResetError, asyncio.CancelledError):
                raise  # the client went away: the recording pipeline logs the call as cancelled
            except Exception as exc:
                # Tokens were sent, so there is no status to change: the last event says what went wrong
                # (OpenAI's SDKs raise on an event with "error"), and no [DONE] follows.
                code, details = report_failure("CompleteStream", exc, self.parts.metrics)
                await _send(response, [_error_json(HTTP_BY_STATUS[code], self._scrub(details))])
                return response
            await response.write(b"data: [DONE]\n\n")
        self._count("CompleteStream")
        await response.write_eof()
        return response

    async def models(self, request: web.Request) -> web.Response:
        try:
            if self.parts.key_check is not None:
                await self.parts.key_check.admit(_key(request), None)
        except Exception as exc:
            return self._error("Models", exc, {})
        return web.json_response(openai.models_json(self.parts.config()))

    async def feedback(self, request: web.Request) -> web.Response:
        try:
            message = openai.feedback_request(openai.parse(openai.FeedbackBody, await self._read(request)))
            async with self._admitted(request, message):
                await self.parts.pipeline.feedback(convert.feedback_request(message))
        except Exception as exc:
            return self._error("Feedback", exc, {})
        self._count("Feedback")
        return web.json_response({"request_id": message.request_id, "recorded": True})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "live"})

    async def readyz(self, request: web.Request) -> web.Response:
        """The gRPC health status of `?service=` (default: Complete's, which needs LiteLLM and the tiers)."""
        service = request.query.get("service", self.parts.ready_service)
        serving = await self.parts.probe(service)
        if serving is None:
            return _error_response(
                HTTP_BY_STATUS[grpc.StatusCode.NOT_FOUND], f"no health service {service!r}"
            )
        status = "SERVING" if serving else "NOT_SERVING"
        return web.json_response({"service": service, "status": status}, status=200 if serving else 503)

    # --- the shared steps --------------------------------------------------------------------------------
    async def _read(self, request: web.Request) -> bytes:
        limit = self.parts.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _TooLargeError(request.content_length, limit)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _TooLargeError(None, limit) from None

    @contextlib.asynccontextmanager
    async def _admitted(self, request: web.Request, message: Any) -> AsyncIterator[tuple[float, str] | None]:
        """The gRPC interceptors' checks, in their order: the key (and tenant), then the limits."""
        client = ""
        if self.parts.key_check is not None:
            client = await self.parts.key_check.admit(_key(request), message)
        with self.parts.limits.admit(message, client):
            yield self.parts.limits.default_deadline()

    def _error(self, method: str, exc: Exception, headers: dict[str, str]) -> web.Response:
        if isinstance(exc, _TooLargeError):
            self.parts.metrics.requests.labels(method, grpc.StatusCode.RESOURCE_EXHAUSTED.name).inc()
            return _error_response(HTTP_TOO_LARGE, str(exc), headers)
        code, details = report_failure(method, exc, self.parts.metrics)
        if isinstance(exc, ResourceExhaustedError) and exc.retry_after_s is not None:
            headers = {
                **headers,
                "Retry-After": str(math.ceil(exc.retry_after_s)),
                "retry-after-ms": str(round(exc.retry_after_s * 1000)),
            }
        return _error_response(HTTP_BY_STATUS[code], self._scrub(details), headers)

    def _scrub(self, text: str) -> str:
        return scrub(text, self.parts.secrets)

    def _count(self, method: str) -> None:
        self.parts.metrics.requests.labels(method, grpc.StatusCode.OK.name).inc()


class _TooLargeError(RouterError):
    """A body over `server.limits.max_message_bytes` (HTTP's counterpart of gRPC's transport limit)."""

    def __init__(self, size: int | None, limit: int):
        size_text = f"{size} bytes" if size is not None else "more"
        super().__init__(f"the request body is {size_text}, over the limit of {limit} bytes")


async def _bounded(deadline: tuple[float, str] | None, call: Awaitable[T]) -> T:
    """`call`, ended with DeadlineExceededError (the reason) at `deadline`, like the gRPC interceptor."""
    if deadline is None:
        return await call
    instant, reason = deadline
    try:
        async with asyncio.timeout(max(instant - time.monotonic(), 0.0)) as scope:
            return await call
    except TimeoutError:
        if scope.expired():
            raise DeadlineExceededError(reason) from None
        raise


def _instant(deadline: tuple[float, str] | None) -> float | None:
    return None if deadline is None else deadline[0]


def _key(request: web.Request) -> str | None:
    return bearer_key([("authorization", request.headers.get("Authorization", ""))])


async def _send(response: web.StreamResponse, events: Iterable[dict[str, Any]]) -> None:
    for event in events:
        await response.write(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")


def _decision_headers(decision: pb.Decision, fallback: bool, escalated: bool) -> dict[str, str]:
    values = {
        "tier": decision.tier,
        "score": f"{decision.score:.6g}",
        "threshold": f"{decision.threshold:.6g}",
        "reason": decision.reason,
        "classifier-version": decision.classifier_version,
        "fallback": "true" if fallback else "false",
        "escalated": "true" if escalated else "false",
        "mode": decision.mode or "route",
    }
    return {HEADER_PREFIX + name: _header_value(value) for name, value in values.items()}


def _header_value(text: str) -> str:
    """`text` as a header value: printable ASCII, no line breaks (other characters \\u-escaped)."""
    return " ".join(text.encode("ascii", "backslashreplace").decode().split())


def _error_json(error: HttpError, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": error.type, "code": error.code, "param": None}}


def _error_response(error: HttpError, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(_error_json(error, message), status=error.status, headers=headers)


_BY_HTTP_STATUS = {error.status: error for error in (*HTTP_BY_STATUS.values(), HTTP_TOO_LARGE)}


@web.middleware
async def _openai_shaped_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (no such path, wrong method) in OpenAI's error shape too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _BY_HTTP_STATUS.get(exc.status, HttpError(exc.status, "invalid_request_error", "http_error"))
        return _error_response(error, f"{request.method} {request.path}: {exc.reason}")
