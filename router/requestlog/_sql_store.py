"""SQL shared by the SQLite and PostgreSQL stores: migrations, idempotent inserts, labels, reads and stats."""

from __future__ import annotations

import contextlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from router.domain import SOCIAL_RULE
from router.requestlog.errors import SchemaError, StoreUnavailableError
from router.requestlog.records import Label, LogRecord, LogStats, ShadowAnswer, TierStats, format_ts
from router.requestlog.schema import LATEST_VERSION, MIGRATIONS, MIGRATIONS_TABLE

REQUEST_COLUMNS: tuple[str, ...] = (
    "request_id", "ts", "rpc", "metadata", "prompt", "prompt_sha256", "score", "threshold", "rule", "tier",
    "model", "classifier_version", "fallback", "fallback_reason", "classify_ms", "total_ms", "prompt_tokens",
    "completion_tokens", "cost_usd", "error", "response", "exemplar_ids", "replica_id", "format_type",
    "schema_name", "schema_valid", "tools_offered", "tool_calls", "mode", "escalated", "escalation_reason",
    "verifier_score", "small_response", "small_model", "verifier_inputs", "escalation_ms",
)  # fmt: skip
# labels table column -> LogRecord field
LABEL_COLUMNS: Mapping[str, str] = {
    "small_ok": "small_ok",
    "source": "label_source",
    "rating": "feedback_rating",
    "score": "feedback_score",
    "comment": "feedback_comment",
    "judge_model": "judge_model",
    "judge_cost_usd": "judge_cost_usd",
    "judge_reason": "judge_reason",
    "updated_at": "labelled_at",
}
_SELECT = (
    "SELECT "
    + ", ".join(f"r.{c}" for c in REQUEST_COLUMNS)
    + ", "
    + ", ".join(f"l.{c}" for c in LABEL_COLUMNS)
    + " FROM requests r LEFT JOIN labels l ON l.request_id = r.request_id"
)
_INSERT = (
    f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' for _ in REQUEST_COLUMNS)})"
    " ON CONFLICT (request_id) DO NOTHING"
)
_UPSERT_LABEL = (
    f"INSERT INTO labels (request_id, {', '.join(LABEL_COLUMNS)})"
    f" VALUES (?, {', '.join('?' for _ in LABEL_COLUMNS)})"
    " ON CONFLICT (request_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in LABEL_COLUMNS)
)
ANSWER_COLUMNS: tuple[str, ...] = (
    "request_id", "tier", "model", "ts", "response", "prompt_tokens", "completion_tokens", "cost_usd",
    "total_ms", "error",
)  # fmt: skip
_UPSERT_ANSWER = (
    f"INSERT INTO shadow_answers ({', '.join(ANSWER_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in ANSWER_COLUMNS)})"
    " ON CONFLICT (request_id, tier) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ANSWER_COLUMNS[2:])
)
_PAGE_SIZE = 500


class SqlStore(ABC):
    """A `RequestLogStore` over one DB-API connection, guarded by a lock and reopened after a failure."""

    types: ClassVar[Mapping[str, str]]
    placeholder: ClassVar[str] = "?"

    def __init__(self, *, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self._conn: Any = None
        self._lock = threading.RLock()

    # -- engine specifics -------------------------------------------------------------------------
    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection; engine errors propagate (they are translated by the caller)."""

    @abstractmethod
    def _begin(self, conn: Any, *, write: bool) -> None:
        """Start a transaction on `conn`."""

    @abstractmethod
    def _unavailable_errors(self) -> tuple[type[BaseException], ...]:
        """The engine errors that mean "down, locked or too slow": they become StoreUnavailableError."""

    @abstractmethod
    def describe(self) -> str:
        """Where the log is, for messages (never with a password)."""

    @abstractmethod
    def _lock_migrations(self, cursor: Any) -> None:
        """Serialise migrations between processes sharing the store (within the open transaction)."""

    def _encode_ts(self, value: datetime) -> Any:
        return format_ts(value)

    def _decode_ts(self, value: Any) -> datetime:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    # -- RequestLogStore ----------------------------------------------------------------------------
    def migrate(self) -> int:
        with self._transaction(write=False):
            return LATEST_VERSION

    def write_batch(self, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        rows = [self._encode_request(record) for record in records]
        with self._transaction(write=True) as cursor:
            cursor.executemany(self._sql(_INSERT), rows)

    def set_label(self, request_id: str, label: Label) -> bool:
        values = (
            request_id, label.small_ok, label.source, label.rating, label.score, label.comment,
            label.judge_model, label.judge_cost_usd, label.judge_reason, self._encode_ts(datetime.now(UTC)),
        )  # fmt: skip
        with self._transaction(write=True) as cursor:
            cursor.execute(self._sql("SELECT 1 FROM requests WHERE request_id = ?"), (request_id,))
            if cursor.fetchone() is None:
                return False
            cursor.execute(self._sql(_UPSERT_LABEL), values)
        return True

    def add_answer(self, answer: ShadowAnswer) -> bool:
        values = [getattr(answer, name) for name in ANSWER_COLUMNS]
        values[ANSWER_COLUMNS.index("ts")] = self._encode_ts(answer.ts)
        with self._transaction(write=True) as cursor:
            cursor.execute(self._sql("SELECT 1 FROM requests WHERE request_id = ?"), (answer.request_id,))
            if cursor.fetchone() is None:
                return False
            cursor.execute(self._sql(_UPSERT_ANSWER), values)
        return True

    def answers(self, request_id: str) -> list[ShadowAnswer]:
        sql = f"SELECT {', '.join(ANSWER_COLUMNS)} FROM shadow_answers WHERE request_id = ? ORDER BY tier"
        with self._transaction(write=False) as cursor:
            cursor.execute(self._sql(sql), (request_id,))
            rows = cursor.fetchall()
        found = []
        for row in rows:
            values = dict(zip(ANSWER_COLUMNS, row, strict=True))
            values["ts"] = self._decode_ts(values["ts"]).astimezone(UTC)
            found.append(ShadowAnswer(**values))
        return found

    def get(self, request_id: str) -> LogRecord | None:
        with self._transaction(write=False) as cursor:
            cursor.execute(self._sql(f"{_SELECT} WHERE r.request_id = ?"), (request_id,))
            row = cursor.fetchone()
        return None if row is None else self._decode(row)

    def iter_records(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[LogRecord]:
        where, params = self._time_range(since, until)
        after: tuple[Any, str] | None = None
        while True:
            clauses, args = list(where), list(params)
            if after is not None:
                clauses.append("(r.ts > ? OR (r.ts = ? AND r.request_id > ?))")
                args += [after[0], after[0], after[1]]
            sql = f"{_SELECT}{_where(clauses)} ORDER BY r.ts, r.request_id LIMIT {_PAGE_SIZE}"
            with self._transaction(write=False) as cursor:
                cursor.execute(self._sql(sql), args)
                rows = cursor.fetchall()
            yield from (self._decode(row) for row in rows)
            if len(rows) < _PAGE_SIZE:
                return
            after = (rows[-1][1], rows[-1][0])

    def recent_scores(
        self, limit: int, *, since: datetime | None = None, classifier_version: str | None = None
    ) -> list[float | None]:
        # Newest first through the (ts, request_id) index, so the cost is `limit` rows however big the log.
        where, params = self._time_range(since, None)
        where.append("r.score IS NOT NULL")
        if classifier_version is not None:
            where.append("r.classifier_version = ?")
            params.append(classifier_version)
        sql = (
            "SELECT CASE WHEN r.rule = ? THEN NULL ELSE r.score END"
            f" FROM requests r{_where(where)} ORDER BY r.ts DESC, r.request_id DESC LIMIT ?"
        )
        with self._transaction(write=False) as cursor:
            cursor.execute(self._sql(sql), [SOCIAL_RULE, *params, int(limit)])
            rows = cursor.fetchall()
        return [None if row[0] is None else float(row[0]) for row in reversed(rows)]

    def stats(self, since: datetime | None = None) -> LogStats:
        where, params = self._time_range(since, None)
        tier_sql = (
            "SELECT COALESCE(r.tier, '-'), COUNT(*), SUM(r.fallback),"
            " SUM(CASE WHEN r.error IS NULL THEN 0 ELSE 1 END),"
            " SUM(r.prompt_tokens), SUM(r.completion_tokens),"
            f" SUM(r.cost_usd), AVG(r.total_ms) FROM requests r{_where(where)} GROUP BY COALESCE(r.tier, '-')"
            " ORDER BY 1"
        )
        totals_sql = (
            "SELECT COUNT(*), MIN(r.ts), MAX(r.ts), COUNT(l.small_ok),"
            " SUM(CASE WHEN l.small_ok = 1 THEN 1 ELSE 0 END)"
            f" FROM requests r LEFT JOIN labels l ON l.request_id = r.request_id{_where(where)}"
        )
        with self._transaction(write=False) as cursor:
            cursor.execute(self._sql(tier_sql), params)
            tier_rows = cursor.fetchall()
            cursor.execute(self._sql(totals_sql), params)
            count, first, last, labelled, small_ok = cursor.fetchone()
        tiers = tuple(
            TierStats(
                tier=str(tier),
                requests=int(n),
                fallbacks=int(fallbacks or 0),
                errors=int(errors or 0),
                prompt_tokens=int(p_tok or 0),
                completion_tokens=int(c_tok or 0),
                cost_usd=float(cost or 0.0),
                mean_total_ms=None if mean_ms is None else float(mean_ms),
            )  # fmt: skip
            for tier, n, fallbacks, errors, p_tok, c_tok, cost, mean_ms in tier_rows
        )
        return LogStats(
            requests=int(count),
            first_ts=None if first is None else self._decode_ts(first).astimezone(UTC),
            last_ts=None if last is None else self._decode_ts(last).astimezone(UTC),
            labelled=int(labelled or 0),
            small_ok=int(small_ok or 0),
            tiers=tiers,
        )

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    # -- plumbing -------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        with self._lock:
            try:
                conn = self._connection()
                self._begin(conn, write=write)
                cursor = conn.cursor()
                yield cursor
                conn.commit()
            except self._unavailable_errors() as exc:
                self._drop_connection()
                raise StoreUnavailableError(f"request log {self.describe()} is unavailable: {exc}") from exc
            except BaseException:
                self._rollback_quietly()
                raise

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self._connect()
            try:
                self._apply_migrations(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _apply_migrations(self, conn: Any) -> None:
        self._begin(conn, write=True)
        cursor = conn.cursor()
        try:
            self._lock_migrations(cursor)
            cursor.execute(MIGRATIONS_TABLE)
            cursor.execute("SELECT version FROM schema_migrations")
            applied = {int(row[0]) for row in cursor.fetchall()}
            if max(applied, default=0) > LATEST_VERSION:
                raise SchemaError(
                    f"request log {self.describe()} has schema version {max(applied)}, newer than this"
                    f" rightsize understands ({LATEST_VERSION}); upgrade rightsize"
                )
            insert = self._sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
            for migration in sorted(MIGRATIONS, key=lambda migration: migration.version):
                if migration.version not in applied:
                    for statement in migration.render(self.types):
                        cursor.execute(statement)
                    cursor.execute(insert, (migration.version, migration.name, format_ts(datetime.now(UTC))))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(
                Exception
            ):  # closing a broken connection may fail; it is discarded anyway
                conn.close()

    def _rollback_quietly(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except self._unavailable_errors():
            self._drop_connection()

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _time_range(self, since: datetime | None, until: datetime | None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("r.ts >= ?")
            params.append(self._encode_ts(since))
        if until is not None:
            clauses.append("r.ts < ?")
            params.append(self._encode_ts(until))
        return clauses, params

    def _encode_request(self, record: LogRecord) -> tuple[Any, ...]:
        values: dict[str, Any] = {name: getattr(record, name) for name in REQUEST_COLUMNS}
        values["ts"] = self._encode_ts(record.ts)
        values["metadata"] = json.dumps(dict(record.metadata), sort_keys=True, ensure_ascii=False)
        values["fallback"] = int(record.fallback)
        values["exemplar_ids"] = json.dumps(list(record.exemplar_ids))
        values["tool_calls"] = json.dumps(list(record.tool_calls))
        values["schema_valid"] = None if record.schema_valid is None else int(record.schema_valid)
        values["escalated"] = None if record.escalated is None else int(record.escalated)
        return tuple(values[name] for name in REQUEST_COLUMNS)

    def _decode(self, row: Sequence[Any]) -> LogRecord:
        values: dict[str, Any] = dict(zip(REQUEST_COLUMNS, row[: len(REQUEST_COLUMNS)], strict=True))
        labels = dict(zip(LABEL_COLUMNS.values(), row[len(REQUEST_COLUMNS) :], strict=True))
        values.update(labels)
        values["ts"] = self._decode_ts(values["ts"])
        values["metadata"] = json.loads(values["metadata"])
        values["fallback"] = bool(values["fallback"])
        values["exemplar_ids"] = json.loads(values["exemplar_ids"])
        values["tool_calls"] = json.loads(values["tool_calls"] or "[]")
        values["schema_valid"] = None if values["schema_valid"] is None else bool(values["schema_valid"])
        values["escalated"] = None if values["escalated"] is None else bool(values["escalated"])
        if values["labelled_at"] is not None:
            values["labelled_at"] = self._decode_ts(values["labelled_at"])
        return LogRecord(**values)


def _where(clauses: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""
