"""Fixtures for the request-log tests: record factories, and fresh SQLite and PostgreSQL stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from router.requestlog import LogRecord, RequestLogStore, open_store, prompt_digest
from tests.router.requestlog.support import PG_URL_ENV, T0, MakeRecord, fresh_database


@pytest.fixture
def make_record() -> MakeRecord:
    """make_record(i, **overrides): a complete, distinct record whose ts is T0 + i seconds."""

    def make(i: int, **overrides: Any) -> LogRecord:
        prompt = f"prompt number {i}: explain øresund ✓"
        values: dict[str, Any] = dict(
            request_id=f"req-{i:06d}",
            ts=T0 + timedelta(seconds=i),
            rpc="Complete",
            metadata={"tenant": "acme", "task": "qa"},
            prompt=prompt,
            prompt_sha256=prompt_digest(prompt),
            score=0.25,
            threshold=0.5,
            rule="score_below_threshold",
            tier="small",
            model="ollama/smollm2",
            classifier_version="v1",
            classify_ms=1.5,
            total_ms=120.25,
            prompt_tokens=12,
            completion_tokens=30,
            cost_usd=0.0001,
            exemplar_ids=("ex-1", "ex-2"),
        )
        values.update(overrides)
        return LogRecord(**values)

    return make


def _pg_admin_url() -> str:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f'{PG_URL_ENV} is not set: run `eval "$(scripts/ci_postgres.sh)"` to start PostgreSQL')
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_database(_pg_admin_url()) as url:
        yield url


@pytest.fixture
def pg_admin() -> Iterator[Any]:
    """An autocommit connection to the admin database (to take a test database offline)."""
    import psycopg

    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        yield conn


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log' / 'requests.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[RequestLogStore]:
    opened = open_store(store_url, timeout_ms=2_000)
    try:
        yield opened
    finally:
        opened.close()
