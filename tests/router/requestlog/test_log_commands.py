"""`rightsize logs export|stats` through the real CLI entry point, on a SQLite and a PostgreSQL log."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from router.cli import CliError, main
from router.cli.log_commands import load_log_settings, parse_since
from router.requestlog import Label, LogSettings, RequestLogStore, read_csv, read_jsonl
from tests.router.requestlog.support import T0, MakeRecord

# The smallest server config: commands that read the log take the server's own config file.
TIERS = "tiers:\n  small: {model: ollama_chat/x}\n  large: {model: openai/y}\n"


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "rightsize.yaml"
    path.write_text(f"{TIERS}log:\n  url: {store_url}\n  store_responses: true\n", encoding="utf-8")
    return path


@pytest.fixture
def logged(store: RequestLogStore, make_record: MakeRecord) -> list:
    records = [
        make_record(
            0, tier="small", response="short answer", metadata={"tenant": "acme", "note": 'a "quoted", comma'}
        ),
        make_record(
            1, tier="large", prompt="line one\nline two", fallback=True, fallback_reason="small_down"
        ),
        make_record(2, tier=None, error="deadline exceeded", prompt=None, cost_usd=None, exemplar_ids=()),
    ]
    store.write_batch(records)
    store.set_label(
        "req-000000", Label(small_ok=1, source="feedback", rating="GOOD", score=0.9, comment="ok")
    )
    return [store.get(r.request_id) for r in records]


@pytest.mark.parametrize(("fmt", "reader"), [("jsonl", read_jsonl), ("csv", read_csv)])
def test_export_round_trips(
    config: Path, logged: list, tmp_path: Path, fmt: str, reader: object, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"export.{fmt}"
    assert main(["logs", "export", "--config", str(config), "--format", fmt, "--output", str(out)]) == 0

    with out.open(encoding="utf-8", newline="") as source:
        assert list(reader(source)) == logged  # type: ignore[operator]
    assert "exported 3 records" in capsys.readouterr().err


def test_export_to_stdout_since(config: Path, logged: list, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "export", "--config", str(config), "--since", "2026-01-01T00:00:01"]) == 0
    exported = list(read_jsonl(io.StringIO(capsys.readouterr().out)))
    assert [r.request_id for r in exported] == ["req-000001", "req-000002"]


def test_stats_figures(config: Path, logged: list, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "stats", "--config", str(config), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["requests"], stats["labelled"], stats["small_ok"]) == (3, 1, 1)
    assert (stats["fallbacks"], stats["errors"]) == (1, 1)
    assert stats["cost_usd"] == pytest.approx(0.0002)
    assert stats["first_ts"] == "2026-01-01T00:00:00.000000Z"
    assert [(t["tier"], t["requests"]) for t in stats["tiers"]] == [("-", 1), ("large", 1), ("small", 1)]

    assert main(["logs", "stats", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert "requests   3" in table
    assert "small" in table and "33.3%" in table


def test_a_missing_sqlite_log_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "rightsize.yaml"
    config.write_text(f"{TIERS}log:\n  url: sqlite:///{tmp_path / 'nothing.db'}\n", encoding="utf-8")
    assert main(["logs", "stats", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rightsize: error: no request log at") and err.count("\n") == 1
    assert not (tmp_path / "nothing.db").exists()


def test_an_unreachable_postgres_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "rightsize.yaml"
    config.write_text(
        f"{TIERS}log:\n  url: postgresql://app:hunter2@127.0.0.1:1/log\n  timeout_ms: 500\n", encoding="utf-8"
    )
    assert main(["logs", "export", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rightsize: error: request log postgresql://app:***@127.0.0.1:1/log is unavailable")
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log: [1, 2]\n", "log: Input should be a valid dictionary"),
        ("log:\n  queue_size: 0\n", "log.queue_size"),
        ("log:\n  url: mysql://x\n", "log.url"),
        ("log:\n  colour: red\n", "log.colour"),
        ("log: {\n", "not valid YAML"),
    ],
)
def test_bad_log_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "rightsize.yaml"
    config.write_text(TIERS + text, encoding="utf-8")
    with pytest.raises(CliError, match=message):
        load_log_settings(config)


def test_log_settings_defaults(tmp_path: Path) -> None:
    config = tmp_path / "rightsize.yaml"
    config.write_text(f"server: {{}}\n{TIERS}", encoding="utf-8")
    settings = load_log_settings(config)
    # Relative paths follow the config file, as models.dir does.
    assert settings == LogSettings(
        url=f"sqlite:///{tmp_path / 'var/rightsize/requests.db'}", spill_dir=tmp_path / "var/rightsize/spill"
    )
    assert (settings.store_prompts, settings.store_responses, settings.sync) == (True, False, "batch")


def test_parse_since() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-01-01", now) == T0
    assert parse_since("2026-01-01T02:00:00+02:00", now) == T0
    assert parse_since(None, now) is None
    with pytest.raises(CliError, match="--since"):
        parse_since("yesterday", now)
