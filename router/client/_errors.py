"""The client's exception tree: one root, one class per gRPC status a backend handles differently."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class RouterClientError(Exception):
    """Root of every error the client raises."""


class RouterCallError(RouterClientError):
    """A call failed with a gRPC status. `code` is the grpc.StatusCode, `details` the server's message,
    `retry_after_s` the server's RetryInfo (google.rpc rich error detail) when it sent one, else None."""

    def __init__(self, code: grpc.StatusCode, details: str, retry_after_s: float | None = None):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.retry_after_s = retry_after_s


class InvalidRequestError(RouterCallError):
    """INVALID_ARGUMENT: the request is malformed (the details name the problem). Do not retry as is."""


class NotFoundError(RouterCallError):
    """NOT_FOUND: e.g. Feedback for an unknown request_id."""


class AuthError(RouterCallError):
    """UNAUTHENTICATED or PERMISSION_DENIED: a missing, wrong or disallowed API key."""


class RateLimitedError(RouterCallError):
    """RESOURCE_EXHAUSTED: over the rate or concurrency limit; `retry_after_s` says when to retry."""


class UnavailableError(RouterCallError):
    """UNAVAILABLE: the router is unreachable or draining, or every tier failed. Retrying may succeed."""


class DeadlineExceededError(RouterCallError):
    """DEADLINE_EXCEEDED: no answer within the call's deadline."""


class AnswerValidationError(RouterClientError):
    """The answer does not fit `response_model`. `response` is the CompleteResponse, `errors` pydantic's."""

    def __init__(self, message: str, response: Any, errors: list[Any]):
        super().__init__(message)
        self.response = response
        self.errors = errors


_BY_CODE: dict[grpc.StatusCode, type[RouterCallError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: AuthError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def from_rpc_error(exc: grpc.RpcError) -> RouterCallError:
    """The typed error for a failed call (sync or asyncio), RetryInfo decoded from the trailers."""
    code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
    details: str = exc.details() or ""  # type: ignore[attr-defined]
    trailers = exc.trailing_metadata() or ()  # type: ignore[attr-defined]
    return _BY_CODE.get(code, RouterCallError)(code, details, _retry_after_s(trailers))


def _retry_after_s(trailers: Any) -> float | None:
    for key, value in trailers:
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            retry_info = error_details_pb2.RetryInfo()
            if detail.Unpack(retry_info):
                return retry_info.retry_delay.ToMilliseconds() / 1000
    return None
