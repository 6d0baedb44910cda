"""The request log: one record per served request, stored in SQLite or PostgreSQL, written off the hot path.

Typical use by the service::

    log = settings.log
    store = open_store(log.url, timeout_ms=log.timeout_ms, durable=log.sync == "strict")
    metrics = PrometheusLogMetrics(registry)
    writer = RequestLogWriter.from_settings(log, store, metrics=metrics).start()
    metrics.track(writer)
    writer.submit(record)                      # per request
    writer.wait_logged(request_id, timeout=2)  # before store.set_label(...) for feedback
    writer.close(timeout=10); store.close()    # on shutdown

See `router.requestlog.writer` for exactly what a kill -9 can lose.
"""

from router.requestlog.errors import InvalidURLError, RequestLogError, SchemaError, StoreUnavailableError
from router.requestlog.export import read_csv, read_jsonl, write_csv, write_jsonl
from router.requestlog.metrics import PrometheusLogMetrics
from router.requestlog.records import Label, LogRecord, LogStats, ShadowAnswer, TierStats, prompt_digest
from router.requestlog.settings import LogSettings
from router.requestlog.spill import SpillFile
from router.requestlog.store import RecordSink, RequestLogStore, open_store
from router.requestlog.urls import parse_url, redact_url
from router.requestlog.writer import RequestLogWriter, WriterEvent, WriterMetrics, callback_metrics

__all__ = [
    "InvalidURLError",
    "Label",
    "LogRecord",
    "LogSettings",
    "LogStats",
    "PrometheusLogMetrics",
    "RecordSink",
    "RequestLogError",
    "RequestLogStore",
    "RequestLogWriter",
    "SchemaError",
    "ShadowAnswer",
    "SpillFile",
    "StoreUnavailableError",
    "TierStats",
    "WriterEvent",
    "WriterMetrics",
    "callback_metrics",
    "open_store",
    "parse_url",
    "prompt_digest",
    "read_csv",
    "read_jsonl",
    "redact_url",
    "write_csv",
    "write_jsonl",
]
