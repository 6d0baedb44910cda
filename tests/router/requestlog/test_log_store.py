"""The store on SQLite and PostgreSQL: idempotent writes, reads, labels, stats and migrations."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from router.redact import Redactor, RedactSettings, redacted
from router.requestlog import (
    InvalidURLError,
    Label,
    RequestLogStore,
    SchemaError,
    ShadowAnswer,
    StoreUnavailableError,
    open_store,
    parse_url,
    redact_url,
)
from router.requestlog.schema import LATEST_VERSION
from router.requestlog.sqlite_store import SqliteStore
from tests.router.requestlog.support import T0, MakeRecord


def test_records_round_trip_with_every_field(store: RequestLogStore, make_record: MakeRecord) -> None:
    full = make_record(1, response="an answer", error=None, fallback=True, fallback_reason="small_down")
    sparse = make_record(2, prompt=None, score=None, tier=None, metadata={}, exemplar_ids=(), error="boom")
    store.write_batch([full, sparse])

    assert store.get(full.request_id) == full
    assert store.get(sparse.request_id) == sparse
    assert store.get("no-such-id") is None


def test_writing_a_batch_twice_stores_each_record_once(
    store: RequestLogStore, make_record: MakeRecord
) -> None:
    batch = [make_record(i) for i in range(10)]
    store.write_batch(batch)
    store.write_batch(batch[5:] + [make_record(10)])

    assert [r.request_id for r in store.iter_records()] == [f"req-{i:06d}" for i in range(11)]


def test_iter_records_pages_in_time_order_and_filters(
    store: RequestLogStore, make_record: MakeRecord
) -> None:
    # More than one page (500), written out of order, with two records sharing a timestamp.
    records = [make_record(i) for i in range(1_203)]
    same_ts = make_record(5_000, request_id="req-zz-same-ts", ts=records[700].ts)
    store.write_batch(list(reversed(records)) + [same_ts])

    everything = list(store.iter_records())
    assert len(everything) == 1_204
    assert [r.ts for r in everything] == sorted(r.ts for r in everything)
    assert len({r.request_id for r in everything}) == 1_204

    window = list(store.iter_records(since=T0 + timedelta(seconds=700), until=T0 + timedelta(seconds=702)))
    assert [r.request_id for r in window] == ["req-000700", "req-zz-same-ts", "req-000701"]


def test_set_label_last_wins_and_unknown_id_is_false(store: RequestLogStore, make_record: MakeRecord) -> None:
    store.write_batch([make_record(1)])

    assert store.set_label(
        "req-000001", Label(small_ok=1, source="judge", judge_model="gpt-x", judge_cost_usd=0.01)
    )
    assert store.set_label(
        "req-000001", Label(small_ok=0, source="feedback", rating="BAD", score=0.1, comment="no")
    )
    assert not store.set_label("req-999999", Label(small_ok=1, source="feedback"))

    labelled = store.get("req-000001")
    assert labelled is not None
    assert (labelled.small_ok, labelled.label_source, labelled.feedback_rating) == (0, "feedback", "BAD")
    assert (labelled.feedback_score, labelled.feedback_comment, labelled.judge_model) == (0.1, "no", None)
    assert labelled.labelled_at is not None
    assert store.get("req-999999") is None


def test_stats_on_a_fixed_log(store: RequestLogStore, make_record: MakeRecord) -> None:
    store.write_batch(
        [
            make_record(
                0, tier="small", cost_usd=0.001, prompt_tokens=10, completion_tokens=20, total_ms=100.0
            ),
            make_record(
                1, tier="small", cost_usd=0.002, prompt_tokens=5, completion_tokens=5, total_ms=300.0
            ),
            make_record(
                2, tier="large", cost_usd=0.5, prompt_tokens=100, completion_tokens=50, total_ms=900.0
            ),
            make_record(
                3, tier="large", fallback=True, fallback_reason="small_down", cost_usd=0.25, total_ms=None
            ),
            make_record(
                4, tier=None, error="deadline", cost_usd=None, prompt_tokens=None, completion_tokens=None
            ),
        ]
    )
    store.set_label("req-000000", Label(small_ok=1, source="feedback"))
    store.set_label("req-000001", Label(small_ok=0, source="judge"))
    store.set_label("req-000002", Label(small_ok=None, source="feedback", rating="GOOD"))

    stats = store.stats()

    assert (stats.requests, stats.labelled, stats.small_ok) == (5, 2, 1)
    assert (stats.fallbacks, stats.errors) == (1, 1)
    assert stats.cost_usd == pytest.approx(0.753)
    assert (stats.first_ts, stats.last_ts) == (T0, T0 + timedelta(seconds=4))
    by_tier = {t.tier: t for t in stats.tiers}
    assert sorted(by_tier) == ["-", "large", "small"]
    assert (
        by_tier["small"].requests,
        by_tier["small"].prompt_tokens,
        by_tier["small"].completion_tokens,
    ) == (2, 15, 25)
    assert by_tier["small"].mean_total_ms == pytest.approx(200.0)
    assert by_tier["large"].mean_total_ms == pytest.approx(900.0)  # the None latency is not averaged in
    assert by_tier["large"].cost_usd == pytest.approx(0.75)
    assert (by_tier["-"].errors, by_tier["-"].cost_usd, by_tier["-"].prompt_tokens) == (1, 0.0, 0)

    later = store.stats(since=T0 + timedelta(seconds=3))
    assert (later.requests, later.labelled) == (2, 0)


def test_stats_of_an_empty_log(store: RequestLogStore) -> None:
    stats = store.stats()
    assert (stats.requests, stats.first_ts, stats.tiers, stats.cost_usd) == (0, None, (), 0)


def test_migrations_run_once_even_from_many_threads_and_stores(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(4)]
    versions: list[int] = []
    threads = [threading.Thread(target=lambda s=s: versions.append(s.migrate())) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for opened in stores:
        opened.close()

    assert versions == [LATEST_VERSION] * 4
    reopened = open_store(store_url)
    try:
        assert reopened.migrate() == LATEST_VERSION
    finally:
        reopened.close()


def test_a_log_from_a_newer_rightsize_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    open_store(f"sqlite:///{path}").migrate()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')", (LATEST_VERSION + 1,)
        )
    conn.close()

    with pytest.raises(SchemaError, match="newer"):
        open_store(f"sqlite:///{path}").migrate()


def test_sqlite_uses_wal_and_full_sync_when_durable(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    store = SqliteStore(path, synchronous="FULL")
    store.migrate()
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_unreachable_postgres_is_unavailable_without_leaking_the_password() -> None:
    store = open_store("postgresql://u:s3cret@127.0.0.1:1/nodb", timeout_ms=500)
    with pytest.raises(StoreUnavailableError) as caught:
        store.migrate()
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "engine", "target"),
    [
        ("sqlite:///var/log.db", "sqlite", "var/log.db"),
        ("sqlite:////abs/log.db", "sqlite", "/abs/log.db"),
        ("postgresql://u@h:5/db", "postgresql", "postgresql://u@h:5/db"),
    ],
)
def test_parse_url(url: str, engine: str, target: str) -> None:
    parsed = parse_url(url)
    assert (parsed.engine, parsed.target) == (engine, target)


@pytest.mark.parametrize(
    "url", ["mysql://x/y", "sqlite://relative.db", "sqlite:///", "sqlite:///:memory:", "x"]
)
def test_parse_url_rejects(url: str) -> None:
    with pytest.raises(InvalidURLError):
        parse_url(url)


def test_redact_url() -> None:
    assert redact_url("postgresql://app:pw@db:5432/log") == "postgresql://app:***@db:5432/log"
    assert redact_url("postgresql://app@db/log") == "postgresql://app@db/log"


def test_tier_answers_and_judge_reasons_round_trip(store: RequestLogStore, make_record: MakeRecord) -> None:
    store.write_batch([make_record(1)])
    large = ShadowAnswer(
        "req-000001",
        "large",
        "openai/gpt-4o",
        T0,
        response="big",
        prompt_tokens=3,
        completion_tokens=4,
        cost_usd=0.5,
        total_ms=12.5,
    )
    assert store.add_answer(large)
    assert store.add_answer(ShadowAnswer("req-000001", "small", "ollama/x", T0, error="down"))
    assert store.add_answer(ShadowAnswer("req-000001", "small", "ollama/x", T0, response="again"))  # replaces
    assert not store.add_answer(ShadowAnswer("req-999999", "large", "m", T0))
    assert store.answers("req-000001") == [
        large,
        ShadowAnswer("req-000001", "small", "ollama/x", T0, response="again"),
    ]
    assert store.answers("req-999999") == []

    store.set_label("req-000001", Label(small_ok=1, source="judge", judge_model="j", judge_reason="same"))
    labelled = store.get("req-000001")
    assert labelled is not None and labelled.judge_reason == "same"


def test_redacted_masks_every_free_text_field_of_a_record(make_record: MakeRecord) -> None:
    """Errors are stored text too: a provider's 400 may quote the prompt back."""
    redactor = Redactor(RedactSettings(builtin=("email",)))
    record = make_record(
        1,
        prompt="mail bo@example.com",
        response="ok, bo@example.com",
        error="400: cannot parse 'bo@example.com'",
        fallback_reason="small: bo@example.com",
    )
    masked = redacted(record, redactor)
    assert (masked.prompt, masked.response, masked.error, masked.fallback_reason) == (
        "mail [EMAIL]",
        "ok, [EMAIL]",
        "400: cannot parse '[EMAIL]'",
        "small: [EMAIL]",
    )
    assert masked.request_id == record.request_id and redacted(record, None) is record
