"""The store interfaces (`RecordSink`, `RequestLogStore`) and `open_store(url)` that picks the engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from router.requestlog.records import Label, LogRecord, LogStats, ShadowAnswer
from router.requestlog.urls import parse_url


class RecordSink(Protocol):
    """The writer's one-method seam to storage."""

    def write_batch(self, records: Sequence[LogRecord]) -> None:
        """Insert records; a request_id already stored is skipped, so a batch may be written twice.

        Raises `StoreUnavailableError` when the store is down or slow; then nothing may be assumed written.
        """
        ...


class RequestLogStore(RecordSink, Protocol):
    """A request log in SQLite or PostgreSQL. Safe to share between threads."""

    def migrate(self) -> int:
        """Connect and bring the schema up to date; returns the schema version. Done lazily otherwise."""
        ...

    def iter_records(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[LogRecord]:
        """Records with `since <= ts < until`, oldest first, with their labels; read in pages."""
        ...

    def recent_scores(
        self, limit: int, *, since: datetime | None = None, classifier_version: str | None = None
    ) -> list[float | None]:
        """Scores of the newest `limit` scored records with `ts >= since` (of `classifier_version` when
        given), oldest first, None for a social turn's (small whatever its score): one indexed query, not a
        scan of the window."""
        ...

    def get(self, request_id: str) -> LogRecord | None:
        """One record with its label, or None when the id is unknown."""
        ...

    def set_label(self, request_id: str, label: Label) -> bool:
        """Replace the request's label (the last one wins); False when the request_id is unknown."""
        ...

    def add_answer(self, answer: ShadowAnswer) -> bool:
        """Store one tier's answer to a logged request (replacing that tier's earlier one); False when the
        request_id is unknown."""
        ...

    def answers(self, request_id: str) -> list[ShadowAnswer]:
        """The stored tier answers of a request, ordered by tier ("large" before "small")."""
        ...

    def stats(self, since: datetime | None = None) -> LogStats:
        """Counts, labels and cost of the records with `ts >= since`."""
        ...

    def close(self) -> None:
        """Close the connection; the store reconnects if used again."""
        ...


def open_store(url: str, *, timeout_ms: int = 5_000, durable: bool = False) -> RequestLogStore:
    """The store for `url`; it connects and migrates on first use, so a down database does not stop start-up.

    `timeout_ms` bounds connecting, waiting for a lock and each statement. `durable` makes a SQLite commit
    survive power loss too (synchronous=FULL; pass it with `log.sync: strict`); PostgreSQL ignores it.
    """
    parsed = parse_url(url)
    if parsed.engine == "sqlite":
        from router.requestlog.sqlite_store import SqliteStore

        return SqliteStore(parsed.path, timeout_ms=timeout_ms, synchronous="FULL" if durable else "NORMAL")
    from router.requestlog.postgres_store import PostgresStore

    return PostgresStore(parsed.target, timeout_ms=timeout_ms)
