"""Shared values for the request-log tests (importable, unlike conftest)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from router.requestlog import LogRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)

MakeRecord = Callable[..., LogRecord]
