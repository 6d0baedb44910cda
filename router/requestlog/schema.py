"""The log's schema as numbered migrations, written once and run the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Column types that differ between the two engines; every other type is spelled the same in both.
SQLITE_TYPES: Mapping[str, str] = {"ts": "TEXT", "float": "REAL", "int": "INTEGER"}
POSTGRES_TYPES: Mapping[str, str] = {"ts": "TIMESTAMPTZ", "float": "DOUBLE PRECISION", "int": "BIGINT"}

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    """One schema step; `statements` use `{ts}`, `{float}` and `{int}` for engine-specific types."""

    version: int
    name: str
    statements: tuple[str, ...]

    def render(self, types: Mapping[str, str]) -> list[str]:
        return [statement.format(**types) for statement in self.statements]


# Append only: a released migration is never edited, a change is a new version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "requests and labels",
        (
            # One row per request, written once by the writer (idempotently: request_id is the key).
            """
            CREATE TABLE requests (
                request_id TEXT PRIMARY KEY,
                ts {ts} NOT NULL,
                rpc TEXT NOT NULL,
                metadata TEXT NOT NULL,
                prompt TEXT,
                prompt_sha256 TEXT NOT NULL,
                score {float},
                threshold {float},
                rule TEXT,
                tier TEXT,
                model TEXT,
                classifier_version TEXT,
                fallback SMALLINT NOT NULL,
                fallback_reason TEXT,
                classify_ms {float},
                total_ms {float},
                prompt_tokens {int},
                completion_tokens {int},
                cost_usd {float},
                error TEXT,
                response TEXT,
                exemplar_ids TEXT NOT NULL
            )
            """,
            "CREATE INDEX requests_ts ON requests (ts, request_id)",
            # The current label of a request (feedback or judge verdict); a new label replaces the row.
            """
            CREATE TABLE labels (
                request_id TEXT PRIMARY KEY REFERENCES requests (request_id) ON DELETE CASCADE,
                small_ok SMALLINT,
                source TEXT NOT NULL,
                rating TEXT,
                score {float},
                comment TEXT,
                judge_model TEXT,
                judge_cost_usd {float},
                updated_at {ts} NOT NULL
            )
            """,
        ),
    ),
    Migration(
        2,
        "shadow answers",
        (
            # The other tier's answer to a shadow-sampled request, for the teacher to compare.
            """
            CREATE TABLE shadow_answers (
                request_id TEXT NOT NULL REFERENCES requests (request_id) ON DELETE CASCADE,
                tier TEXT NOT NULL,
                model TEXT NOT NULL,
                response TEXT,
                prompt_tokens {int},
                completion_tokens {int},
                cost_usd {float},
                total_ms {float},
                error TEXT,
                ts {ts} NOT NULL,
                PRIMARY KEY (request_id, tier)
            )
            """,
        ),
    ),
    Migration(
        3,
        "judge reasons",
        # The judge's one-sentence reason for its verdict (`rightsize label`).
        ("ALTER TABLE labels ADD COLUMN judge_reason TEXT",),
    ),
    Migration(
        4,
        "replica ids",
        # Which server process answered (`server.replica_id`), for several replicas sharing one log.
        # Rows written before this migration keep NULL: nobody knows which replica answered them.
        ("ALTER TABLE requests ADD COLUMN replica_id TEXT",),
    ),
    Migration(
        5,
        "response format and tool use",
        (
            "ALTER TABLE requests ADD COLUMN format_type TEXT",
            "ALTER TABLE requests ADD COLUMN schema_name TEXT",
            "ALTER TABLE requests ADD COLUMN schema_valid SMALLINT",
            "ALTER TABLE requests ADD COLUMN tools_offered {int} NOT NULL DEFAULT 0",
            "ALTER TABLE requests ADD COLUMN tool_calls TEXT NOT NULL DEFAULT '[]'",
        ),
    ),
    Migration(
        6,
        "cascade verdicts",
        # The answer-aware cascade (routing.mode: cascade): the mode, the verdict's three contract fields,
        # the small answer it judged (with `response`, both answers of an escalated call), what the
        # verifiers read (JSON) and the latency an escalation added. NULL on older rows and route calls.
        (
            "ALTER TABLE requests ADD COLUMN mode TEXT",
            "ALTER TABLE requests ADD COLUMN escalated SMALLINT",
            "ALTER TABLE requests ADD COLUMN escalation_reason TEXT",
            "ALTER TABLE requests ADD COLUMN verifier_score {float}",
            "ALTER TABLE requests ADD COLUMN small_response TEXT",
            "ALTER TABLE requests ADD COLUMN small_model TEXT",
            "ALTER TABLE requests ADD COLUMN verifier_inputs TEXT",
            "ALTER TABLE requests ADD COLUMN escalation_ms {float}",
        ),
    ),
)

LATEST_VERSION = max(migration.version for migration in MIGRATIONS)
