"""RouterClient and AsyncRouterClient: Route, Complete (optionally into a pydantic model), CompleteStream
and Feedback over the generated stubs, with API key, TLS and deadlines as in the `rightsize` CLI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import grpc

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.client._channel import API_KEY_ENV, auth_metadata, open_channel
from router.client._errors import from_rpc_error
from router.client._requests import (
    Messages,
    Model,
    complete_request,
    feedback_request,
    parse_answer,
    route_request,
)

DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 120.0


class _Settings:
    """What both clients share: the channel's options, the call metadata and the default deadline."""

    def __init__(
        self,
        address: str,
        api_key: str | None,
        tls: bool,
        ca_file: Path | None,
        cert_file: Path | None,
        key_file: Path | None,
        timeout_s: float | None,
    ):
        self.address = address
        self.metadata = auth_metadata(api_key if api_key is not None else os.environ.get(API_KEY_ENV))
        self.tls, self.ca_file, self.cert_file, self.key_file = tls, ca_file, cert_file, key_file
        self.timeout_s = timeout_s

    def open_channel(self, *, aio: bool) -> Any:
        return open_channel(
            self.address,
            tls=self.tls,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            aio=aio,
        )

    def timeout(self, timeout_s: float | None) -> float | None:
        return self.timeout_s if timeout_s is None else timeout_s


class RouterClient:
    """A blocking client. `api_key` defaults to $RIGHTSIZE_API_KEY; `tls`, `ca_file`, `cert_file` and
    `key_file` as the CLI's --tls/--ca-file/--cert-file/--key-file; `timeout_s` is each call's deadline
    (None: none; the server then applies its default). Use it as a context manager, or close()."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        api_key: str | None = None,
        tls: bool = False,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
    ):
        self._settings = _Settings(address, api_key, tls, ca_file, cert_file, key_file, timeout_s)
        self._channel = self._settings.open_channel(aio=False)
        self._stub = pb_grpc.RouterStub(self._channel)

    def __enter__(self) -> RouterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def route(
        self,
        messages: Messages,
        *,
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> pb.RouteResponse:
        """The routing decision only (no model call)."""
        return self._unary("Route", route_request(messages, metadata, request_id), timeout_s)

    @overload
    def complete(self, messages: Messages, *, response_model: type[Model], **options: Any) -> Model: ...

    @overload
    def complete(
        self, messages: Messages, *, response_model: None = None, **options: Any
    ) -> pb.CompleteResponse: ...

    def complete(
        self,
        messages: Messages,
        *,
        response_model: type[Model] | None = None,
        response_format: pb.ResponseFormat | None = None,
        tools: Sequence[pb.Tool] = (),
        tool_choice: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
        force_tier: str = "",
        timeout_s: float | None = None,
        **params: Any,
    ) -> Model | pb.CompleteResponse:
        """Route and generate. `params`: max_tokens, temperature, top_p, stop, seed, presence_penalty,
        frequency_penalty. With `response_model` (a pydantic model class) the request carries its JSON
        schema and the answer comes back as a validated instance (else AnswerValidationError)."""
        request = complete_request(
            messages,
            response_model=response_model,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            metadata=metadata,
            request_id=request_id,
            force_tier=force_tier,
            params=params,
        )
        response = self._unary("Complete", request, timeout_s)
        return response if response_model is None else parse_answer(response, response_model)

    def stream(
        self,
        messages: Messages,
        *,
        response_format: pb.ResponseFormat | None = None,
        tools: Sequence[pb.Tool] = (),
        tool_choice: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
        force_tier: str = "",
        timeout_s: float | None = None,
        **params: Any,
    ) -> Iterator[pb.CompleteChunk]:
        """CompleteStream's chunks as they arrive; a failure, even mid-stream, raises a RouterCallError."""
        request = complete_request(
            messages,
            response_model=None,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            metadata=metadata,
            request_id=request_id,
            force_tier=force_tier,
            params=params,
        )
        calls = self._stub.CompleteStream(
            request, timeout=self._settings.timeout(timeout_s), metadata=self._settings.metadata
        )
        try:
            yield from calls
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def feedback(
        self,
        request_id: str,
        rating: str,
        *,
        score: float | None = None,
        comment: str = "",
        timeout_s: float | None = None,
    ) -> None:
        """Rate an earlier answer: rating "GOOD" or "BAD", score optional in [0, 1]."""
        self._unary("Feedback", feedback_request(request_id, rating, score, comment), timeout_s)

    def _unary(self, method: str, request: Any, timeout_s: float | None) -> Any:
        try:
            return getattr(self._stub, method)(
                request, timeout=self._settings.timeout(timeout_s), metadata=self._settings.metadata
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc


class AsyncRouterClient:
    """The asyncio client: the same methods and options as RouterClient, as coroutines (stream: an async
    iterator). Create and use it inside one running event loop; `await close()` (or `async with`)."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        api_key: str | None = None,
        tls: bool = False,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
    ):
        self._settings = _Settings(address, api_key, tls, ca_file, cert_file, key_file, timeout_s)
        self._channel = self._settings.open_channel(aio=True)
        self._stub = pb_grpc.RouterStub(self._channel)

    async def __aenter__(self) -> AsyncRouterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def route(
        self,
        messages: Messages,
        *,
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
        timeout_s: float | None = None,
    ) -> pb.RouteResponse:
        """As RouterClient.route."""
        return await self._unary("Route", route_request(messages, metadata, request_id), timeout_s)

    @overload
    async def complete(self, messages: Messages, *, response_model: type[Model], **options: Any) -> Model: ...

    @overload
    async def complete(
        self, messages: Messages, *, response_model: None = None, **options: Any
    ) -> pb.CompleteResponse: ...

    async def complete(
        self,
        messages: Messages,
        *,
        response_model: type[Model] | None = None,
        response_format: pb.ResponseFormat | None = None,
        tools: Sequence[pb.Tool] = (),
        tool_choice: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
        force_tier: str = "",
        timeout_s: float | None = None,
        **params: Any,
    ) -> Model | pb.CompleteResponse:
        """As RouterClient.complete."""
        request = complete_request(
            messages,
            response_model=response_model,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            metadata=metadata,
            request_id=request_id,
            force_tier=force_tier,
            params=params,
        )
        response = await self._unary("Complete", request, timeout_s)
        return response if response_model is None else parse_answer(response, response_model)

    async def stream(
        self,
        messages: Messages,
        *,
        response_format: pb.ResponseFormat | None = None,
        tools: Sequence[pb.Tool] = (),
        tool_choice: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str = "",
        force_tier: str = "",
        timeout_s: float | None = None,
        **params: Any,
    ) -> AsyncIterator[pb.CompleteChunk]:
        """As RouterClient.stream."""
        request = complete_request(
            messages,
            response_model=None,
            response_format=response_format,
            tools=tools,
            tool_choice=tool_choice,
            metadata=metadata,
            request_id=request_id,
            force_tier=force_tier,
            params=params,
        )
        calls = self._stub.CompleteStream(
            request, timeout=self._settings.timeout(timeout_s), metadata=self._settings.metadata
        )
        try:
            async for chunk in calls:
                yield chunk
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    async def feedback(
        self,
        request_id: str,
        rating: str,
        *,
        score: float | None = None,
        comment: str = "",
        timeout_s: float | None = None,
    ) -> None:
        """As RouterClient.feedback."""
        await self._unary("Feedback", feedback_request(request_id, rating, score, comment), timeout_s)

    async def _unary(self, method: str, request: Any, timeout_s: float | None) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, timeout=self._settings.timeout(timeout_s), metadata=self._settings.metadata
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
