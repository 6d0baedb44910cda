"""The embedded request log: one SQLite file in WAL mode."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from router.requestlog._sql_store import SqlStore
from router.requestlog.schema import SQLITE_TYPES


class SqliteStore(SqlStore):
    """A request log in a SQLite file (created with its parent directory on first use).

    WAL mode; several processes may read while one writes. With `synchronous="NORMAL"` a commit survives
    the process being killed but an OS crash or power loss may lose the last ones; "FULL" survives both.
    """

    types: ClassVar = SQLITE_TYPES

    def __init__(
        self, path: Path, *, timeout_ms: int = 5_000, synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    ) -> None:
        super().__init__(timeout_ms=timeout_ms)
        self.path = Path(path)
        self.synchronous = synchronous

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE for writes, so two
        # writers queue on the busy timeout instead of failing on lock upgrade).
        conn = sqlite3.connect(
            self.path, timeout=self.timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            self._enable_wal(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL, retrying within the timeout: SQLite does not always call its busy handler for this
        switch, so connections opening a new file together can get "database is locked" at once."""
        deadline = time.monotonic() + self.timeout_ms / 1000
        pause = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _begin(self, conn: Any, *, write: bool) -> None:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _lock_migrations(self, cursor: Any) -> None:
        """BEGIN IMMEDIATE already holds SQLite's write lock."""

    def _unavailable_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.OperationalError, OSError)
