"""The one place errors become answers: a gRPC status for each error type, and that status's HTTP mirror."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from classifier.errors import ClassifierError
from router.errors import (
    AllTiersFailedError,
    BackendError,
    DeadlineExceededError,
    InvalidRequestError,
    NotFoundError,
    NotReadyError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from router.requestlog import RequestLogError

if TYPE_CHECKING:
    from router.metrics import RouterMetrics

log = logging.getLogger(__name__)

# First matching type wins, anything else is INTERNAL.
STATUS_BY_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (AllTiersFailedError, grpc.StatusCode.UNAVAILABLE),
    (BackendError, grpc.StatusCode.UNAVAILABLE),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (RequestLogError, grpc.StatusCode.UNAVAILABLE),  # log.sync: strict, and neither store nor spill took it
)


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and details a client receives for `exc`."""
    for exc_type, code in STATUS_BY_ERROR:
        if isinstance(exc, exc_type):
            return code, str(exc)
    if isinstance(exc, ClassifierError):
        return grpc.StatusCode.INTERNAL, f"classifier error: {exc}"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log"


def report_failure(method: str, exc: Exception, metrics: RouterMetrics) -> tuple[grpc.StatusCode, str]:
    """Count and log a failed call (either door); the status code and details its client receives."""
    code, details = status_for(exc)
    metrics.requests.labels(method, code.name).inc()
    if code == grpc.StatusCode.INTERNAL:
        log.error("%s failed", method, exc_info=exc)
    elif code != grpc.StatusCode.INVALID_ARGUMENT:
        log.warning("%s: %s: %s", method, code.name, details)
    return code, details


@dataclass(frozen=True)
class HttpError:
    """How the OpenAI-compatible door answers a gRPC status: HTTP status, OpenAI error `type` and `code`."""

    status: int
    type: str
    code: str


# The HTTP door's mirror of the table above: every status it can produce, as OpenAI's API answers it.
HTTP_BY_STATUS: dict[grpc.StatusCode, HttpError] = {
    grpc.StatusCode.INVALID_ARGUMENT: HttpError(400, "invalid_request_error", "invalid_argument"),
    grpc.StatusCode.UNAUTHENTICATED: HttpError(401, "authentication_error", "invalid_api_key"),
    grpc.StatusCode.PERMISSION_DENIED: HttpError(403, "permission_error", "permission_denied"),
    grpc.StatusCode.NOT_FOUND: HttpError(404, "not_found_error", "not_found"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: HttpError(429, "rate_limit_error", "rate_limit_exceeded"),
    grpc.StatusCode.UNAVAILABLE: HttpError(503, "service_unavailable_error", "unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: HttpError(504, "timeout_error", "deadline_exceeded"),
    grpc.StatusCode.INTERNAL: HttpError(500, "server_error", "internal"),
}
# A body over `server.limits.max_message_bytes`: on gRPC the transport's own RESOURCE_EXHAUSTED, here 413.
HTTP_TOO_LARGE = HttpError(413, "invalid_request_error", "request_too_large")
