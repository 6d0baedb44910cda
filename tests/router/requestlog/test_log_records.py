"""Record values, their JSON form, the public API and the Prometheus adapter."""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import router.requestlog as requestlog
from router.requestlog import (
    Label,
    LogRecord,
    PrometheusLogMetrics,
    RequestLogWriter,
    SpillFile,
    prompt_digest,
)
from router.requestlog.records import record_from_json, record_to_json
from tests.router.requestlog.support import T0, MakeRecord


def test_json_round_trip_keeps_every_field(make_record: MakeRecord) -> None:
    record = make_record(
        3, response="ok", small_ok=0, label_source="judge", labelled_at=T0 + timedelta(days=1)
    )
    payload = record_to_json(record)
    assert payload["ts"] == "2026-01-01T00:00:03.000000Z"
    assert record_from_json(payload) == record


def test_times_are_normalised_to_utc(make_record: MakeRecord) -> None:
    local = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert make_record(0, ts=local).ts == T0
    with pytest.raises(ValueError, match="timezone-aware"):
        make_record(0, ts=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"rpc": "Embed"}, "rpc must be"), ({"request_id": ""}, "request_id")],
)
def test_invalid_records_are_refused(make_record: MakeRecord, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_record(0, **overrides)


def test_unknown_json_fields_are_refused(make_record: MakeRecord) -> None:
    with pytest.raises(ValueError, match="unknown log record fields: colour"):
        record_from_json({**record_to_json(make_record(0)), "colour": "red"})


def test_label_values_are_checked() -> None:
    with pytest.raises(ValueError, match="small_ok"):
        Label(small_ok=2, source="feedback")
    with pytest.raises(ValueError, match="source"):
        Label(small_ok=1, source="")


def test_prompt_digest() -> None:
    assert prompt_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_public_api_is_what_all_exports() -> None:
    public = {
        name
        for name, value in vars(requestlog).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(requestlog.__all__)
    for name in set(requestlog.__all__) - {"WriterEvent"}:  # a Literal alias carries no docstring
        assert getattr(requestlog, name).__doc__, f"{name} has no docstring"


def test_prometheus_metrics_count_on_the_given_registry(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusLogMetrics(registry)
    writer = RequestLogWriter(sink=_NeverCalled(), spill=SpillFile(tmp_path), metrics=metrics)
    metrics.track(writer)

    metrics.record_event("written", 5)
    metrics.record_event("spilled", 2)
    metrics.record_event("store_error", 1)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("rightsize_request_log_records_total", event="written") == 5
    assert value("rightsize_request_log_records_total", event="spilled") == 2
    assert value("rightsize_request_log_store_errors_total") == 1
    assert value("rightsize_request_log_queue_depth") == 0


class _NeverCalled:
    def write_batch(self, records: object) -> None:
        raise AssertionError("not expected to write")


def test_records_are_immutable(make_record: MakeRecord) -> None:
    record: LogRecord = make_record(0)
    with pytest.raises(AttributeError):
        record.tier = "large"  # type: ignore[misc]


def test_metadata_must_be_strings(make_record: MakeRecord) -> None:
    with pytest.raises(ValueError, match="metadata"):
        make_record(0, metadata={"tenant": 42})


def test_request_log_errors_are_router_errors() -> None:
    from router.errors import RouterError

    assert issubclass(requestlog.StoreUnavailableError, requestlog.RequestLogError)
    assert issubclass(requestlog.RequestLogError, RouterError)
    assert issubclass(requestlog.InvalidURLError, ValueError)  # so pydantic reports a bad log.url as invalid
