"""The router's exception tree: every expected failure is a RouterError."""

from __future__ import annotations

from collections.abc import Sequence


class RouterError(Exception):
    """Root of every error the router raises on purpose."""


class ConfigError(RouterError):
    """The configuration file is missing, unreadable or invalid (the message names the key)."""


class InvalidRequestError(RouterError):
    """The client's request is malformed: no messages, no user message, unknown role or tier, too big."""


class DeadlineExceededError(RouterError):
    """The client's deadline ran out before an answer was ready."""


class NotReadyError(RouterError):
    """A part of the service is not ready (e.g. the completion backend failed to load)."""


class BackendError(RouterError):
    """One tier's model call failed.

    `kind` is a short, low-cardinality label for metrics: timeout, connection, auth, rate_limit,
    bad_request, server or protocol; also unconfigured (the tier has no API key, so it was not called)
    and not_ready (the tier's embedded model is not answering).
    """

    # Seconds the provider asked us to wait (a 429's Retry-After); the tier's breaker honours it.
    retry_after_s: float | None = None

    def __init__(self, tier: str, model: str, kind: str, detail: str):
        super().__init__(f"{tier} tier ({model}) {kind}: {detail}")
        self.tier = tier
        self.model = model
        self.kind = kind
        self.detail = detail


class AllTiersFailedError(RouterError):
    """Every tier that was tried failed; the message names each tier and its error."""

    def __init__(self, failures: Sequence[BackendError]):
        super().__init__("all tiers failed: " + "; ".join(str(failure) for failure in failures))
        self.failures = tuple(failures)


class NotFoundError(RouterError):
    """The request names something that does not exist, e.g. Feedback for an unknown request_id."""


class UnauthenticatedError(RouterError):
    """The call carries no API key, or one that is not configured."""


class PermissionDeniedError(RouterError):
    """The call's API key is bound to another tenant than the one the request claims."""


class ResourceExhaustedError(RouterError):
    """A bound refused the call at once: its client's rate limit, or the calls already in flight.

    `retry_after_s` (rate limit only) is when a retry will be admitted.
    """

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s
