"""The request log's exceptions: one branch, `RequestLogError`, of the router's `RouterError` tree."""

from __future__ import annotations

from router.errors import RouterError


class RequestLogError(RouterError):
    """Root of every error the request log raises on purpose."""


class StoreUnavailableError(RequestLogError):
    """The log store cannot be reached or did not answer in time; the caller may retry later."""


class SchemaError(RequestLogError):
    """The store's schema is not one this version understands (e.g. written by a newer rightsize)."""


class InvalidURLError(RequestLogError, ValueError):
    """`log.url` is not a `sqlite:///PATH` or `postgresql://...` URL."""
