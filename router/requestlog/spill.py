"""Local append-only JSONL spill files: where records wait while the store is down, slow or backed up."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from router.requestlog.records import LogRecord, dumps_record, record_from_json

logger = logging.getLogger(__name__)

SPILL_GLOB = "spill-*.jsonl"


class SpillFile:
    """Append-only JSONL files in one directory, one record per line, replayed and deleted later.

    Each process appends to a file of its own, named `spill-<time_ns>-<pid>.jsonl` and held under an
    exclusive `flock`, so a replayer (this process or another sharing the directory) only ever reads
    files nobody is writing. fsync policy: every `append` reaches the kernel before it returns (so it
    survives kill -9); it reaches the disk (survives power loss) when `append(durable=True)` or `sync()`
    is called, which the writer does in strict mode on every append and otherwise once per flush interval.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._active: IO[bytes] | None = None
        self._unsynced = False

    def append(self, records: Sequence[LogRecord], *, durable: bool = False) -> None:
        """Append records; with `durable` they are fsync'd before this returns. Raises OSError on failure."""
        if not records:
            return
        payload = "".join(dumps_record(record) + "\n" for record in records).encode("utf-8")
        with self._lock:
            active = self._active or self._open_active()
            active.write(payload)
            active.flush()
            if durable:
                os.fsync(active.fileno())
            else:
                self._unsynced = True

    def sync(self) -> None:
        """fsync what was appended since the last sync."""
        with self._lock:
            if self._active is not None and self._unsynced:
                os.fsync(self._active.fileno())
            self._unsynced = False

    def has_backlog(self) -> bool:
        """True when any spill file exists in the directory (this process's or another's)."""
        return self.directory.is_dir() and any(self.directory.glob(SPILL_GLOB))

    def replay(self, write: Callable[[Sequence[LogRecord]], None], *, batch_size: int) -> int:
        """Feed every spilled record to `write` in batches, oldest file first; returns how many.

        The file being appended to is closed first, so it is replayed too. A file is deleted only once
        all of it was written; if `write` raises, the exception propagates and the file stays for the
        next replay (records already written are written again then, which the store ignores).
        Files held by another live process are skipped.
        """
        with self._lock:
            self._close_active()
        replayed = 0
        for path in sorted(self.directory.glob(SPILL_GLOB)) if self.directory.is_dir() else ():
            replayed += self._replay_file(path, write, batch_size)
        return replayed

    def close(self) -> None:
        """fsync and close the file being appended to."""
        with self._lock:
            self._close_active()

    def _open_active(self) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"spill-{time.time_ns():020d}-{os.getpid()}.jsonl"
        active = path.open("ab")
        fcntl.flock(active.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._active = active
        return active

    def _close_active(self) -> None:
        active, self._active = self._active, None
        if active is not None:
            if self._unsynced:
                os.fsync(active.fileno())
            self._unsynced = False
            active.close()  # releases the flock: the file is now replayable

    def _replay_file(self, path: Path, write: Callable[[Sequence[LogRecord]], None], batch_size: int) -> int:
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # replayed and deleted by another process meanwhile
            return 0
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process is writing or replaying it
            if not path.exists():
                return 0
            replayed = 0
            for batch in _batches(_read_records(path, handle), batch_size):
                write(batch)
                replayed += len(batch)
            path.unlink()
            return replayed


def _read_records(path: Path, handle: IO[bytes]) -> Iterator[LogRecord]:
    lines = handle.read().split(b"\n")
    # A file always ends in "\n", so the last element is empty unless a write was cut short by a crash.
    torn = lines.pop()
    if torn:
        logger.warning(
            "%s: skipping an incomplete last line (%d bytes) cut short by a crash", path, len(torn)
        )
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield record_from_json(json.loads(line))
        except (ValueError, TypeError) as exc:
            # Keep the file for a human rather than lose the rest of it.
            bad = path.with_suffix(".bad")
            os.replace(path, bad)
            raise ValueError(
                f"{bad}: line {number} is not a log record ({exc}); file kept for inspection"
            ) from exc


def _batches(records: Iterator[LogRecord], size: int) -> Iterator[list[LogRecord]]:
    batch: list[LogRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
