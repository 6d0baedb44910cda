"""The shared request log: PostgreSQL through psycopg 3, for several replicas writing one log."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from router.requestlog._sql_store import SqlStore
from router.requestlog.errors import RequestLogError
from router.requestlog.schema import POSTGRES_TYPES
from router.requestlog.urls import redact_url

# Any fixed number: replicas starting together take this advisory lock so only one migrates at a time.
_MIGRATION_LOCK_KEY = 0x5249_4748_5453  # "RIGHTS"


class PostgresStore(SqlStore):
    """A request log in PostgreSQL, reached by a libpq URL. psycopg is imported on first connect."""

    types: ClassVar = POSTGRES_TYPES
    placeholder: ClassVar[str] = "%s"

    def __init__(self, url: str, *, timeout_ms: int = 5_000) -> None:
        super().__init__(timeout_ms=timeout_ms)
        self.url = url

    def describe(self) -> str:
        return redact_url(self.url)

    def _connect(self) -> Any:
        psycopg = _import_psycopg()
        # statement/lock timeouts turn a slow or locked database into an error the writer spills on.
        options = f"-c statement_timeout={self.timeout_ms} -c lock_timeout={self.timeout_ms} -c TimeZone=UTC"
        return psycopg.connect(
            self.url,
            connect_timeout=max(2, math.ceil(self.timeout_ms / 1000)),
            options=options,
            application_name="rightsize-requestlog",
        )

    def _begin(self, conn: Any, *, write: bool) -> None:
        """psycopg opens a transaction with the first statement; nothing to do."""

    def _lock_migrations(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))

    def _unavailable_errors(self) -> tuple[type[BaseException], ...]:
        psycopg = _import_psycopg()
        return (psycopg.OperationalError, psycopg.InterfaceError)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise RequestLogError("a postgresql:// log.url needs psycopg: pip install 'psycopg[binary]'") from exc
    return psycopg
