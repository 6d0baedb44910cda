"""Shared values for the request-log tests (importable, unlike conftest)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from router.requestlog import LogRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PG_URL_ENV = "RIGHTSIZE_TEST_PG_URL"

MakeRecord = Callable[..., LogRecord]


@contextmanager
def fresh_database(admin_url: str, prefix: str = "rl_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database next to `admin_url`'s, dropped on exit."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
