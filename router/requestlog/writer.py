"""`RequestLogWriter`: takes records off the hot path, batches them into the store, spills when it cannot.

What a kill -9 can lose
-----------------------
* `log.sync: batch` (the default): only the records still in memory, i.e. submitted but neither committed
  to the store nor appended to a spill file yet. That is at most `log.queue_size` + `log.batch_size`
  records; in steady state it is the records of the last `log.flush_interval_ms` (200 ms by default) plus
  the duration of one insert.
* `log.sync: strict`: nothing that `submit` has returned for (`submit` returns once the record is
  committed to the store or appended to the spill file and fsync'd).
* In both modes, whatever was committed or spilled survives a kill -9: a SQLite commit and a spill append
  reach the kernel before they count as done. A spill line cut short by the kill can only hold a record
  from the window above; replay skips it with a warning.
* A power cut or OS crash can, in batch mode, also lose spill appends since the last fsync (once per flush
  interval) and the last SQLite commits (WAL with synchronous=NORMAL). Strict mode fsyncs every spill
  append and opens SQLite with synchronous=FULL (`open_store(..., durable=True)`); PostgreSQL commits are
  as durable as the server's own settings make them.
* A clean shutdown (`close`, which the server calls on SIGTERM) loses nothing: the queue is written, or
  spilled and fsync'd if the store does not answer within the close timeout.

Spilled records are replayed at start-up and whenever the store answers again. Inserts are idempotent
(request_id is the primary key), so a record written twice is stored once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

from router.redact import Redactor, RedactSettings, redacted
from router.requestlog.errors import RequestLogError
from router.requestlog.records import LogRecord
from router.requestlog.settings import LogSettings
from router.requestlog.spill import SpillFile
from router.requestlog.store import RecordSink

logger = logging.getLogger(__name__)

WriterEvent = Literal["written", "spilled", "replayed", "store_error", "dropped"]


class WriterMetrics(Protocol):
    """The writer's one-method seam to metrics (e.g. a Prometheus counter labelled by event)."""

    def record_event(self, event: WriterEvent, count: int) -> None:
        """`count` records were written, spilled, replayed or dropped; or a store call failed ("store_error").

        "dropped" happens only when the store and the spill file both fail (e.g. disk full); it is also
        logged at ERROR. In strict mode the request's `submit` raises instead."""
        ...


class _NoMetrics:
    def record_event(self, event: WriterEvent, count: int) -> None:
        pass


@dataclass
class _Entry:
    record: LogRecord
    done: threading.Event | None = field(default=None)  # set once stored or spilled (strict mode only)
    ok: bool = False  # stored or spilled; False after `done` only when both failed


class RequestLogWriter:
    """Write `LogRecord`s to a store from a background thread; see the module docstring for durability.

    `submit` never waits on the store in batch mode. Call `start()` once, and `close()` on shutdown.
    """

    def __init__(
        self,
        sink: RecordSink,
        spill: SpillFile,
        *,
        queue_size: int = 10_000,
        batch_size: int = 200,
        flush_interval_ms: int = 200,
        sync: Literal["batch", "strict"] = "batch",
        store_prompts: bool = True,
        store_responses: bool = False,
        store_cascade_answers: bool = True,
        strict_timeout_s: float = 10.0,
        retry_interval_s: float = 1.0,
        max_retry_interval_s: float = 30.0,
        metrics: WriterMetrics | None = None,
        redact: RedactSettings | None = None,
        replica_id: str | None = None,
    ) -> None:
        self.sink = sink
        self.replica_id = replica_id  # stamped on every record that does not name its replica
        self.redactor = Redactor(redact) if redact is not None and redact.enabled else None
        self.spill = spill
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_ms = flush_interval_ms
        self.sync = sync
        self.store_prompts = store_prompts
        self.store_responses = store_responses
        self.store_cascade_answers = store_cascade_answers
        self.strict_timeout_s = strict_timeout_s
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        self.metrics: WriterMetrics = metrics or _NoMetrics()
        self._cond = threading.Condition()
        self._queue: deque[_Entry] = deque()
        self._inflight: list[_Entry] = []  # the batch the writer thread is storing right now
        self._pending_ids: dict[str, int] = {}  # queued or in flight: not yet in the store or spill
        self._enqueued = 0
        self._done = 0
        self._flush_requested = False
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._store_down = False
        self._retry_at = 0.0  # time.monotonic() of the next replay attempt
        self._retry_delay = retry_interval_s
        self._spills = 0  # bumped on every spill, so a replay knows whether more arrived meanwhile

    @classmethod
    def from_settings(
        cls,
        settings: LogSettings,
        sink: RecordSink,
        metrics: WriterMetrics | None = None,
        replica_id: str | None = None,
    ) -> Self:
        """A writer configured by the `log:` section, stamping `replica_id` (the server's
        `server.replica_id`) on each record; the caller still calls `start()`."""
        return cls(
            sink,
            SpillFile(settings.spill_dir),
            queue_size=settings.queue_size,
            batch_size=settings.batch_size,
            flush_interval_ms=settings.flush_interval_ms,
            sync=settings.sync,
            store_prompts=settings.store_prompts,
            store_responses=settings.store_responses,
            store_cascade_answers=settings.store_cascade_answers,
            strict_timeout_s=2 * settings.timeout_ms / 1000 + 1.0,
            metrics=metrics,
            redact=settings.redact,
            replica_id=replica_id,
        )

    @property
    def queue_depth(self) -> int:
        """Records waiting in memory (for a gauge)."""
        return len(self._queue)

    def start(self) -> Self:
        """Start the background thread, which first replays any spill files left by an earlier run."""
        if self._thread is not None:
            raise RuntimeError("RequestLogWriter.start() called twice")
        self._retry_at = time.monotonic()
        if self.spill.has_backlog():
            self._spills = 1  # replay right away rather than after the first flush interval
        self._thread = threading.Thread(target=self._run, name="requestlog-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, record: LogRecord) -> None:
        """Log one request.

        Batch mode: returns at once (at worst after a local file append when the queue is full) and never
        raises. Strict mode: returns once the record is in the store or fsync'd to the spill file, and
        raises `RequestLogError` when neither was possible."""
        entry = _Entry(self._apply_policy(record), threading.Event() if self.sync == "strict" else None)
        with self._cond:
            accepted = not self._closing and len(self._queue) < self.queue_size
            if accepted:
                self._queue.append(entry)
                self._enqueued += 1
                self._pending_ids[record.request_id] = self._pending_ids.get(record.request_id, 0) + 1
                if entry.done is not None or len(self._queue) >= self.batch_size:
                    self._cond.notify_all()
        if not accepted:
            # Queue full (the store is slow) or already closed: the spill file takes it, never the floor.
            entry.ok = self._try_spill([entry.record], durable=self.sync == "strict" or self._closing)
            if self._closed:
                self.spill.close()  # nobody else will close the file this late submit opened
        elif entry.done is not None and not entry.done.wait(self.strict_timeout_s):
            # The writer is stuck in the store. It may still store the record: inserts are idempotent.
            entry.ok = self._try_spill([entry.record], durable=True)
        if entry.done is not None and not entry.ok:
            raise RequestLogError(f"request {record.request_id} could not be logged (store and spill failed)")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record submitted so far is in the store or the spill file; False on timeout."""
        with self._cond:
            target = self._enqueued
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def wait_logged(self, request_id: str, timeout: float | None = None) -> bool:
        """Wait until a submitted record has left memory (stored or spilled); True at once if not pending.

        Feedback for a request answered moments ago calls this before `store.set_label`."""
        with self._cond:
            if request_id not in self._pending_ids:
                return True
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: request_id not in self._pending_ids, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Write everything still queued, then stop. If the store does not take it all within `timeout`
        seconds, the rest is spilled and fsync'd. Returns True when the store took everything."""
        with self._cond:
            if self._closed:
                return True
            self._closing = True
            self._cond.notify_all()
        clean = True
        if self._thread is None:
            self._run()  # never started: drain the queue in the caller
        else:
            self._thread.join(timeout)
            clean = not self._thread.is_alive()
        if not clean:
            self._spill_leftovers()
        self.spill.close()
        with self._cond:
            self._closed = True
            clean = clean and not self._store_down
        return clean

    # -- background thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    return
            except Exception:  # this thread must outlive any surprise, or the queue would only fill up
                logger.exception("request log writer: unexpected error; continuing")
                time.sleep(self.flush_interval_ms / 1000)

    def _step(self) -> bool:
        """One round: write or spill one batch, then replay if due. True once closing and drained."""
        with self._cond:
            self._cond.wait_for(self._batch_ready, self._wait_timeout())
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            self._inflight = batch
            if not self._queue:
                self._flush_requested = False
            finished = self._closing and not batch
        if batch:
            self._write_or_spill(batch)
        if finished:
            if not self._store_down:
                self._maybe_replay(force=True)  # a clean shutdown leaves no backlog behind
            self.spill.close()  # also when close() gave up waiting and this thread spilled later
            return True
        self._maybe_replay()
        self.spill.sync()
        return False

    def _batch_ready(self) -> bool:
        if self._closing or self._flush_requested or len(self._queue) >= self.batch_size:
            return True
        return bool(self._queue) and self.sync == "strict"

    def _wait_timeout(self) -> float:
        interval = self.flush_interval_ms / 1000
        if self._spills and not self._closing:
            return max(0.0, min(interval, self._retry_at - time.monotonic()))
        return interval

    def _write_or_spill(self, batch: list[_Entry]) -> None:
        records = [entry.record for entry in batch]
        if not self._store_down:
            try:
                self.sink.write_batch(records)
            except Exception as exc:  # any store failure: the records go to the spill file, never lost
                self._mark_down(exc)
            else:
                self.metrics.record_event("written", len(records))
                self._finish(batch, ok=True)
                return
        ok = self._try_spill(records, durable=self.sync == "strict" or self._closing)
        self._finish(batch, ok=ok)

    def _finish(self, batch: Sequence[_Entry], *, ok: bool) -> None:
        with self._cond:
            if batch is self._inflight:
                self._inflight = []
            for entry in batch:
                request_id = entry.record.request_id
                left = self._pending_ids.pop(request_id, 1) - 1
                if left > 0:
                    self._pending_ids[request_id] = left
            self._done += len(batch)
            self._cond.notify_all()
        for entry in batch:
            entry.ok = ok
            if entry.done is not None:
                entry.done.set()

    def _maybe_replay(self, *, force: bool = False) -> None:
        if not force and (time.monotonic() < self._retry_at or self._closing):
            return
        spills_before = self._spills
        if not self._store_down and spills_before == 0 and not self.spill.has_backlog():
            self._retry_at = time.monotonic() + self.max_retry_interval_s
            return
        try:
            replayed = self.spill.replay(self._replay_batch, batch_size=self.batch_size)
        except ValueError as exc:  # a corrupt spill file: it was set aside as *.bad; say so loudly
            logger.error("request log: %s", exc)
            return
        except Exception as exc:
            self._mark_down(exc)
            return
        if replayed:
            logger.info("request log: replayed %d spilled records", replayed)
        with self._cond:
            self._store_down = False
            self._retry_delay = self.retry_interval_s
            if self._spills == spills_before:
                self._spills = 0
            self._retry_at = time.monotonic() + (
                self.retry_interval_s if self._spills else self.max_retry_interval_s
            )

    def _replay_batch(self, records: Sequence[LogRecord]) -> None:
        self.sink.write_batch(records)
        self.metrics.record_event("replayed", len(records))

    def _mark_down(self, exc: Exception) -> None:
        self.metrics.record_event("store_error", 1)
        with self._cond:
            if not self._store_down:
                logger.warning("request log store failed, spilling until it recovers: %s", exc)
            self._store_down = True
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self.max_retry_interval_s)

    # -- helpers ----------------------------------------------------------------------------------------
    def _try_spill(self, records: Sequence[LogRecord], *, durable: bool) -> bool:
        """Spill; when even that fails (disk full, ...), say so loudly and count the records as dropped."""
        try:
            self._spill(records, durable=durable)
        except (OSError, TypeError, ValueError) as exc:
            logger.error(
                "request log: spilling to %s failed, %d records lost: %s",
                self.spill.directory,
                len(records),
                exc,
            )
            self.metrics.record_event("dropped", len(records))
            return False
        return True

    def _spill(self, records: Sequence[LogRecord], *, durable: bool) -> None:
        self.spill.append(records, durable=durable)
        with self._cond:
            self._spills += 1
            self._retry_at = min(self._retry_at, time.monotonic() + self._retry_delay)
        self.metrics.record_event("spilled", len(records))

    def _spill_leftovers(self) -> None:
        """close() timed out with the writer stuck in the store: spill what it still holds."""
        with self._cond:
            leftovers = list(self._queue)
            self._queue.clear()
            inflight = list(self._inflight)
        # The batch in flight may still commit later; spilling it too is safe because inserts are idempotent.
        # It is finished by the writer thread, whose call is still running.
        if leftovers or inflight:
            count = len(leftovers) + len(inflight)
            logger.warning("request log: store too slow at shutdown, spilling %d records", count)
            ok = self._try_spill([entry.record for entry in inflight + leftovers], durable=True)
            self._finish(leftovers, ok=ok)

    def _apply_policy(self, record: LogRecord) -> LogRecord:
        """Drop what the settings say not to keep; labels only ever come from `set_label`."""
        if record.label_source is not None or record.small_ok is not None:
            record = record.without_label()
        if self.replica_id is not None and record.replica_id is None:
            record = dataclasses.replace(record, replica_id=self.replica_id)
        if not self.store_prompts and record.prompt is not None:
            record = dataclasses.replace(record, prompt=None)
        cascade_kept = self.store_cascade_answers and record.small_response is not None
        if not self.store_responses and record.response is not None and not cascade_kept:
            record = dataclasses.replace(record, response=None)
        if not self.store_cascade_answers and record.small_response is not None:
            record = dataclasses.replace(record, small_response=None)
        if self.redactor is not None:
            record = redacted(record, self.redactor)
        return record


def callback_metrics(callback: Callable[[WriterEvent, int], None]) -> WriterMetrics:
    """Adapt a plain function to the `WriterMetrics` seam."""

    class _Callback:
        def record_event(self, event: WriterEvent, count: int) -> None:
            callback(event, count)

    return _Callback()
