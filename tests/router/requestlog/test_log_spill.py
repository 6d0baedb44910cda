"""Spill files: append, replay, crash leftovers, and files held by another process."""

from __future__ import annotations

import fcntl
from collections.abc import Sequence
from pathlib import Path

import pytest

from router.requestlog import LogRecord, SpillFile
from tests.router.requestlog.support import MakeRecord


class Collector:
    """A sink that keeps what it is given, and can fail on a chosen call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.batches: list[list[LogRecord]] = []
        self.fail_on_call = fail_on_call

    def __call__(self, records: Sequence[LogRecord]) -> None:
        if self.fail_on_call == len(self.batches):
            self.fail_on_call = None
            raise ConnectionError("store went away")
        self.batches.append(list(records))

    @property
    def records(self) -> list[LogRecord]:
        return [r for batch in self.batches for r in batch]


def test_appended_records_replay_in_order_then_the_file_is_gone(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    spill = SpillFile(tmp_path)
    records = [make_record(i) for i in range(7)]
    spill.append(records[:3])
    spill.append(records[3:], durable=True)
    assert spill.has_backlog()

    sink = Collector()
    assert spill.replay(sink, batch_size=3) == 7

    assert sink.records == records
    assert [len(b) for b in sink.batches] == [3, 3, 1]
    assert not spill.has_backlog()
    assert spill.replay(sink, batch_size=3) == 0


def test_a_failed_replay_keeps_the_file_for_the_next_one(tmp_path: Path, make_record: MakeRecord) -> None:
    spill = SpillFile(tmp_path)
    records = [make_record(i) for i in range(5)]
    spill.append(records)

    failing = Collector(fail_on_call=1)
    with pytest.raises(ConnectionError):
        spill.replay(failing, batch_size=2)
    assert spill.has_backlog()

    retry = Collector()
    assert spill.replay(retry, batch_size=2) == 5  # the first batch again: the store ignores duplicates
    assert retry.records == records


def test_appends_after_a_replay_go_to_a_new_file(tmp_path: Path, make_record: MakeRecord) -> None:
    spill = SpillFile(tmp_path)
    spill.append([make_record(1)])
    sink = Collector()
    spill.replay(sink, batch_size=10)
    spill.append([make_record(2)])
    spill.close()

    spill.replay(sink, batch_size=10)
    assert [r.request_id for r in sink.records] == ["req-000001", "req-000002"]


def test_a_torn_last_line_from_a_crash_is_skipped(tmp_path: Path, make_record: MakeRecord) -> None:
    spill = SpillFile(tmp_path)
    spill.append([make_record(1), make_record(2)])
    spill.close()
    (path,) = tmp_path.glob("spill-*.jsonl")
    with path.open("ab") as handle:
        handle.write(b'{"request_id": "req-0000')

    sink = Collector()
    assert SpillFile(tmp_path).replay(sink, batch_size=10) == 2
    assert [r.request_id for r in sink.records] == ["req-000001", "req-000002"]


def test_a_corrupt_file_is_set_aside_not_deleted(tmp_path: Path, make_record: MakeRecord) -> None:
    spill = SpillFile(tmp_path)
    spill.append([make_record(1)])
    spill.close()
    (path,) = tmp_path.glob("spill-*.jsonl")
    with path.open("ab") as handle:
        handle.write(b"not json\n")

    with pytest.raises(ValueError, match="line 2"):
        SpillFile(tmp_path).replay(Collector(), batch_size=10)
    assert path.with_suffix(".bad").exists()
    assert not path.exists()


def test_a_file_locked_by_another_process_is_skipped(tmp_path: Path, make_record: MakeRecord) -> None:
    live = SpillFile(tmp_path)
    live.append([make_record(1)])  # still open: this instance holds the lock on its file
    other = tmp_path / "spill-00000000000000000001-999999.jsonl"
    other.write_text("")
    try:
        with other.open("rb") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            assert SpillFile(tmp_path).replay(Collector(), batch_size=10) == 0
        assert other.exists()
    finally:
        live.close()
    sink = Collector()
    assert SpillFile(tmp_path).replay(sink, batch_size=10) == 1  # released: now both files replay
    assert not other.exists()
