"""The store interfaces (`RecordSink`, `RequestLogStore`) and `open_store(url)` that picks the engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from router.requestlog.errors import InvalidURLError
from router.requestlog.records import Label, LogRecord, LogStats, ShadowAnswer


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
    ) -> list[float]:
        """Scores of the newest `limit` scored records with `ts >= since` (of `classifier_version` when
        given), oldest first: one indexed query, not a scan of the window."""
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


@dataclass(frozen=True)
class StoreURL:
    """A parsed `log.url`: the engine, and a file path (SQLite) or a libpq URL (PostgreSQL)."""

    engine: Literal["sqlite", "postgresql"]
    target: str

    @property
    def path(self) -> Path:
        return Path(self.target)


def parse_url(url: str) -> StoreURL:
    """Parse `sqlite:///relative.db`, `sqlite:////abs/path.db` or `postgresql://user@host:port/db`."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise InvalidURLError("a SQLite log URL is sqlite:///PATH (three slashes, then the file path)")
        return StoreURL("sqlite", rest[1:])
    if scheme in ("postgresql", "postgres"):
        if not rest:
            raise InvalidURLError("a PostgreSQL log URL is postgresql://USER@HOST:PORT/DBNAME")
        return StoreURL("postgresql", url)
    raise InvalidURLError(f"log.url must start with sqlite:/// or postgresql://, not {redact_url(url)!r}")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, fit for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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
