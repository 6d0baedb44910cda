"""The writer: every record reaches the store exactly once, through concurrency, outages and shutdown."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from router.requestlog import (
    LogRecord,
    LogSettings,
    RequestLogError,
    RequestLogStore,
    RequestLogWriter,
    SpillFile,
    StoreUnavailableError,
    WriterEvent,
    callback_metrics,
    open_store,
)
from tests.router.requestlog.support import MakeRecord


class Events:
    """Counts the writer's metric events (what a Prometheus counter would see)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event: WriterEvent, count: int) -> None:
        with self._lock:
            self.counts[event] += count


class SwitchableSink:
    """The store behind the writer's one-method seam, with an off switch and an optional hang."""

    def __init__(self, store: RequestLogStore) -> None:
        self.store = store
        self.down = threading.Event()
        self.hang = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def write_batch(self, records: Sequence[LogRecord]) -> None:
        self.calls += 1
        if self.hang.is_set():
            self.release.wait(10)
            raise StoreUnavailableError("timed out while hung")
        if self.down.is_set():
            raise StoreUnavailableError("down for the test")
        self.store.write_batch(records)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def stored_ids(store: RequestLogStore) -> list[str]:
    return [record.request_id for record in store.iter_records()]


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / "spill"


@pytest.fixture
def writers(spill_dir: Path) -> Iterator[Callable[..., RequestLogWriter]]:
    """Build started writers with fast test timings; any still open are closed at the end."""
    made: list[RequestLogWriter] = []

    def build(sink: Any, events: Events | None = None, **options: Any) -> RequestLogWriter:
        settings: dict[str, Any] = dict(
            flush_interval_ms=10, retry_interval_s=0.05, max_retry_interval_s=0.2, batch_size=50
        )
        settings.update(options)
        writer = RequestLogWriter(
            sink, SpillFile(spill_dir), metrics=callback_metrics(events or Events()), **settings
        )
        made.append(writer)
        return writer.start()

    yield build
    for writer in made:
        writer.close(timeout=5)


def submit_from_threads(writer: RequestLogWriter, records: Sequence[LogRecord], threads: int) -> None:
    def work(part: Sequence[LogRecord]) -> None:
        for record in part:
            writer.submit(record)

    workers = [threading.Thread(target=work, args=(records[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


@pytest.mark.parametrize("queue_size", [10_000, 7], ids=["roomy-queue", "overflowing-queue"])
def test_concurrent_submits_are_stored_exactly_once(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord, queue_size: int
) -> None:
    events = Events()
    writer = writers(store, events, queue_size=queue_size)
    records = [make_record(i) for i in range(2_000)]

    submit_from_threads(writer, records, threads=16)
    assert writer.close(timeout=10)

    assert sorted(stored_ids(store)) == [r.request_id for r in records]
    assert events.counts["written"] + events.counts["spilled"] == 2_000
    assert events.counts["replayed"] == events.counts["spilled"]  # overflow went to the spill file and back
    assert (queue_size == 7) == (events.counts["spilled"] > 0)
    assert not SpillFile(writer.spill.directory).has_backlog()


def test_an_outage_spills_and_recovery_replays_everything_once(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    sink, events = SwitchableSink(store), Events()
    writer = writers(sink, events)
    sink.down.set()
    for i in range(300):
        writer.submit(make_record(i))
    assert writer.flush(timeout=5)
    assert events.counts["spilled"] == 300 and events.counts["store_error"] >= 1
    assert stored_ids(store) == []

    sink.down.clear()
    for i in range(300, 400):
        writer.submit(make_record(i))
    wait_until(lambda: len(stored_ids(store)) == 400)
    assert writer.close(timeout=5)

    assert stored_ids(store) == [make_record(i).request_id for i in range(400)]
    # Records submitted before the writer noticed the recovery were spilled too; all came back.
    assert events.counts["replayed"] == events.counts["spilled"] >= 300
    assert events.counts["written"] + events.counts["spilled"] == 400


def test_a_real_postgres_outage(
    pg_url: str, pg_admin: Any, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    store = open_store(pg_url, timeout_ms=1_000)
    database = pg_url.rpartition("/")[2]
    events = Events()
    writer = writers(store, events)
    try:
        for i in range(100):
            writer.submit(make_record(i))
        assert writer.flush(timeout=5)
        assert events.counts["written"] == 100

        pg_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        pg_admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
        )
        for i in range(100, 250):
            writer.submit(make_record(i))
        wait_until(lambda: events.counts["spilled"] >= 150)
        with pytest.raises(StoreUnavailableError):
            store.stats()

        pg_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        wait_until(lambda: events.counts["replayed"] >= 150)
        assert writer.close(timeout=5)
        assert stored_ids(store) == [make_record(i).request_id for i in range(250)]
    finally:
        pg_admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        store.close()


def test_a_locked_sqlite_file_is_an_outage(
    tmp_path: Path, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    path = tmp_path / "requests.db"
    store = open_store(f"sqlite:///{path}", timeout_ms=100)
    store.migrate()
    events = Events()
    writer = writers(store, events)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        for i in range(60):
            writer.submit(make_record(i))
        wait_until(lambda: events.counts["spilled"] == 60)
        blocker.execute("ROLLBACK")
        wait_until(lambda: events.counts["replayed"] == 60)
        assert writer.close(timeout=5)
        assert len(stored_ids(store)) == 60
    finally:
        blocker.close()
        store.close()


def test_close_flushes_what_is_still_in_memory(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    writer = writers(store, flush_interval_ms=60_000, batch_size=10_000)
    for i in range(500):
        writer.submit(make_record(i))
    assert writer.queue_depth == 500  # nothing written yet: the batch is neither full nor due

    assert writer.close(timeout=5)
    assert len(stored_ids(store)) == 500
    assert not writer.spill.has_backlog()


def test_a_hung_store_at_shutdown_spills_and_the_next_start_replays(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    sink = SwitchableSink(store)
    sink.hang.set()
    writer = writers(sink, batch_size=20)
    for i in range(100):
        writer.submit(make_record(i))
    wait_until(lambda: sink.calls >= 1)  # the writer is stuck inside the store with one batch

    assert not writer.close(timeout=0.3)
    assert stored_ids(store) == []
    sink.release.set()
    wait_until(lambda: not any(t.name == "requestlog-writer" for t in threading.enumerate()))

    restarted = writers(store)
    assert restarted.close(timeout=5)
    assert stored_ids(store) == [make_record(i).request_id for i in range(100)]


def test_spill_files_left_by_an_earlier_run_are_replayed_at_start(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord, spill_dir: Path
) -> None:
    leftover = SpillFile(spill_dir)
    leftover.append([make_record(i) for i in range(30)])
    leftover.close()

    writers(store, flush_interval_ms=60_000)  # replay does not wait for the first flush interval
    wait_until(lambda: len(stored_ids(store)) == 30, timeout=5)


def test_strict_mode_returns_only_once_the_record_is_stored(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    writer = writers(store, sync="strict", flush_interval_ms=60_000)
    for i in range(20):
        writer.submit(make_record(i))
        assert store.get(make_record(i).request_id) is not None


def test_strict_mode_with_the_store_down_spills_before_returning(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord, spill_dir: Path
) -> None:
    sink = SwitchableSink(store)
    sink.down.set()
    writer = writers(sink, sync="strict")
    writer.submit(make_record(1))
    spilled = "".join(path.read_text() for path in spill_dir.glob("spill-*.jsonl"))
    assert '"request_id":"req-000001"' in spilled


def test_prompts_responses_and_labels_follow_the_settings(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    settings = LogSettings(store_prompts=False, store_responses=False, flush_interval_ms=10)
    writer = RequestLogWriter.from_settings(settings.model_copy(update={"spill_dir": Path("unused")}), store)
    writer.submit(make_record(1, response="secret answer", small_ok=1, label_source="feedback"))
    writer.close(timeout=5)  # never started: close drains in the caller

    stored = store.get("req-000001")
    assert stored is not None
    assert (stored.prompt, stored.response, stored.small_ok, stored.label_source) == (None, None, None, None)
    assert stored.prompt_sha256 == make_record(1).prompt_sha256

    keeping = writers(store, store_prompts=True, store_responses=True)
    keeping.submit(make_record(2, response="kept answer"))
    keeping.close(timeout=5)
    kept = store.get("req-000002")
    assert kept is not None and (kept.prompt, kept.response) == (make_record(2).prompt, "kept answer")


def test_wait_logged_lets_feedback_find_a_just_answered_request(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord
) -> None:
    from router.requestlog import Label

    writer = writers(store, flush_interval_ms=60_000, batch_size=10_000)
    writer.submit(make_record(1))
    assert store.get("req-000001") is None  # still in memory

    assert writer.wait_logged("req-000001", timeout=5)
    assert store.set_label("req-000001", Label(small_ok=1, source="feedback", rating="GOOD"))
    assert writer.wait_logged("never-submitted", timeout=0)


def test_a_submit_after_close_is_spilled_not_dropped(
    store: RequestLogStore, writers: Callable[..., RequestLogWriter], make_record: MakeRecord, spill_dir: Path
) -> None:
    events = Events()
    writer = writers(store, events)
    writer.close(timeout=5)
    writer.submit(make_record(1))
    assert events.counts["spilled"] == 1

    writers(store).close(timeout=5)
    assert stored_ids(store) == ["req-000001"]


@pytest.mark.parametrize("sync", ["batch", "strict"])
def test_when_store_and_spill_both_fail_batch_counts_a_drop_and_strict_raises(
    store: RequestLogStore, make_record: MakeRecord, tmp_path: Path, sync: Literal["batch", "strict"]
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the spill directory should be")
    sink, events = SwitchableSink(store), Events()
    sink.down.set()
    writer = RequestLogWriter(
        sink, SpillFile(blocked), sync=sync, flush_interval_ms=10, metrics=callback_metrics(events)
    ).start()
    try:
        if sync == "strict":
            with pytest.raises(RequestLogError, match="could not be logged"):
                writer.submit(make_record(1))
        else:
            writer.submit(make_record(1))
            assert writer.flush(timeout=5)
        assert events.counts["dropped"] == 1
    finally:
        writer.close(timeout=5)
