"""`PrometheusLogMetrics`: the writer's metrics on a registry the caller owns (no global metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.requestlog.writer import RequestLogWriter, WriterEvent

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class PrometheusLogMetrics:
    """`WriterMetrics` as Prometheus series on `registry`.

    * `<prefix>_records_total{event="written"|"spilled"|"replayed"}`: records, counted once per event;
    * `<prefix>_store_errors_total`: failed store calls;
    * `<prefix>_queue_depth`: records waiting in memory, once `track(writer)` was called.
    """

    def __init__(self, registry: CollectorRegistry, prefix: str = "rightsize_request_log") -> None:
        from prometheus_client import Counter, Gauge

        self.records = Counter(
            f"{prefix}_records", "Request-log records by what happened to them", ["event"], registry=registry
        )
        self.store_errors = Counter(
            f"{prefix}_store_errors", "Failed request-log store calls", registry=registry
        )
        self.queue_depth = Gauge(
            f"{prefix}_queue_depth", "Request-log records waiting in memory", registry=registry
        )

    def record_event(self, event: WriterEvent, count: int) -> None:
        if event == "store_error":
            self.store_errors.inc(count)
        else:
            self.records.labels(event=event).inc(count)

    def track(self, writer: RequestLogWriter) -> None:
        """Report `writer`'s queue depth at each scrape."""
        self.queue_depth.set_function(lambda: writer.queue_depth)
