"""The replica id on every record: migration 4 upgrades an existing log in place (SQLite and PostgreSQL),
the writer stamps its replica's id, and exports, spill files and old exports keep working."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from router.requestlog import (
    RequestLogStore,
    RequestLogWriter,
    SpillFile,
    open_store,
    read_csv,
    read_jsonl,
    write_csv,
)
from router.requestlog.records import dumps_record
from router.requestlog.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    POSTGRES_TYPES,
    SQLITE_TYPES,
)
from tests.router.requestlog.support import MakeRecord
from tests.router.requestlog.test_log_writer import wait_until

# Columns of `requests` as migration 3 left them: what a log written by an older rightsize holds.
V3_COLUMNS = (
    "request_id, ts, rpc, metadata, prompt, prompt_sha256, score, threshold, rule, tier, model,"
    " classifier_version, fallback, fallback_reason, classify_ms, total_ms, prompt_tokens,"
    " completion_tokens, cost_usd, error, response, exemplar_ids"
)


@contextmanager
def _raw_connection(url: str) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """A DB-API connection to `url`, its placeholder and its column types."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn:
            yield conn, "?", dict(SQLITE_TYPES)
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            yield conn, "%s", dict(POSTGRES_TYPES)


def _old_log(url: str) -> None:
    """A log at schema version 3 holding one request, written the way rightsize wrote it then."""
    with _raw_connection(url) as (conn, mark, types):
        cursor = conn.cursor()
        cursor.execute(MIGRATIONS_TABLE)
        for migration in MIGRATIONS[:3]:
            for statement in migration.render(types):
                cursor.execute(statement)
            cursor.execute(
                f"INSERT INTO schema_migrations VALUES ({mark}, {mark}, {mark})",
                (migration.version, migration.name, "2025-01-01T00:00:00.000000Z"),
            )
        ts = "2025-01-01T00:00:00.000000Z" if mark == "?" else "2025-01-01T00:00:00+00:00"
        values = ("old-1", ts, "Route", "{}", "hi", "ab" * 32, 0.2, 0.5, "global", "small", "m", "v0", 0)
        values += (None,) * 8 + ("[]",)
        cursor.execute(f"INSERT INTO requests ({V3_COLUMNS}) VALUES ({', '.join([mark] * 22)})", values)
        conn.commit()


def test_an_older_log_is_migrated_in_place_and_keeps_its_rows(
    store_url: str, make_record: MakeRecord
) -> None:
    _old_log(store_url)
    store = open_store(store_url)
    try:
        assert store.migrate() == LATEST_VERSION == 6
        old = store.get("old-1")
        assert old is not None and (old.prompt, old.replica_id) == ("hi", None)
        store.write_batch([make_record(1, replica_id="pod-a:50051"), make_record(2)])
        assert [(r.request_id, r.replica_id) for r in store.iter_records()] == [
            ("old-1", None),
            ("req-000001", "pod-a:50051"),
            ("req-000002", None),
        ]
    finally:
        store.close()


def test_the_writer_stamps_its_replica_id_unless_the_record_names_one(
    store_url: str, tmp_path: Path, make_record: MakeRecord
) -> None:
    store = open_store(store_url)
    writer = RequestLogWriter(store, SpillFile(tmp_path / "spill"), replica_id="pod-b:50051").start()
    try:
        writer.submit(make_record(1))
        writer.submit(make_record(2, replica_id="replayed-from-pod-a"))
        assert writer.flush(10)
        assert {r.request_id: r.replica_id for r in store.iter_records()} == {
            "req-000001": "pod-b:50051",
            "req-000002": "replayed-from-pod-a",
        }
    finally:
        writer.close()
        store.close()


def test_a_spill_line_from_an_older_rightsize_replays_without_a_replica_id(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    """A spill file written before the field existed has no `replica_id` key; a restarted (newer) replica
    replays it, and does not claim it: the record keeps no replica id."""
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    line = dumps_record(make_record(1)).replace(',"replica_id":null', "")
    assert "replica_id" not in line
    (spill_dir / "spill-00000000000000000001-1.jsonl").write_text(line + "\n")
    store = open_store(f"sqlite:///{tmp_path / 'requests.db'}")
    writer = RequestLogWriter(store, SpillFile(spill_dir), replica_id="pod-c:50051").start()
    try:
        wait_until(lambda: store.get("req-000001") is not None)
        record = store.get("req-000001")
        assert record is not None and record.replica_id is None
    finally:
        writer.close()
        store.close()


def test_exports_carry_the_replica_id_and_older_exports_still_read(make_record: MakeRecord) -> None:
    record = make_record(1, replica_id="pod-a:50051")
    out = io.StringIO()
    write_csv([record], out)
    assert next(read_csv(io.StringIO(out.getvalue()))) == record
    header, row = csv.reader(io.StringIO(out.getvalue()))
    position = header.index("replica_id")
    old_csv = io.StringIO()
    csv.writer(old_csv).writerows(
        [cell for i, cell in enumerate(line) if i != position] for line in (header, row)
    )
    assert next(read_csv(io.StringIO(old_csv.getvalue()))).replica_id is None
    old_jsonl = dumps_record(record).replace(',"replica_id":"pod-a:50051"', "")
    assert next(read_jsonl(io.StringIO(old_jsonl + "\n"))).replica_id is None


def test_recent_scores_are_the_newest_of_a_version_in_one_query(
    store: RequestLogStore, make_record: MakeRecord
) -> None:
    """What the target share resolves on: the newest `limit` scores (oldest first), not the whole window."""
    records = [
        make_record(i, score=i / 100, classifier_version="v2" if i % 3 else "v1", replica_id=f"pod-{i % 3}")
        for i in range(1, 31)
    ]
    store.write_batch([*records, make_record(31, score=None, classifier_version="v2")])
    v2 = [r.score for r in records if r.classifier_version == "v2"]
    assert store.recent_scores(5, classifier_version="v2") == v2[-5:]
    assert store.recent_scores(1000) == [r.score for r in records]
    assert store.recent_scores(100, since=records[-3].ts) == [r.score for r in records[-3:]]
    store.write_batch([make_record(32, score=0.9, classifier_version="v2", rule="social")])
    assert store.recent_scores(2, classifier_version="v2") == [v2[-1], None]  # small whatever its score
