"""`rightsize report` figures against values computed by hand on a small fixed log."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from router.cli import main
from router.config import TierSettings
from router.learning.report import Price, build_report, large_price
from router.requestlog import LogRecord, open_store, prompt_digest
from tests.router.learning.support import T0, write_config
from tests.router.support import Backends


def record(request_id: str, minute: int, **fields: Any) -> LogRecord:
    values: dict[str, Any] = dict(rpc="Complete", tier="small", fallback=False, cost_usd=0.0)
    values.update(fields)
    return LogRecord(
        request_id=request_id,
        ts=T0 + timedelta(minutes=minute),
        prompt_sha256=prompt_digest(request_id),
        **values,
    )


# The large tier costs $1e-6 per prompt token and $2e-6 per completion token (tests/router/support.py).
FIXED_LOG = [
    record("c1", 0, prompt_tokens=100, completion_tokens=50, total_ms=100.0),
    record("c2", 1, prompt_tokens=200, completion_tokens=100, total_ms=300.0),
    record("c3", 2, tier="large", prompt_tokens=100, completion_tokens=100, cost_usd=0.0003, total_ms=1000.0),
    record(
        "c4",
        3,
        fallback=True,
        fallback_reason="small down",
        prompt_tokens=50,
        completion_tokens=50,
        cost_usd=0.00015,
        total_ms=2000.0,
    ),
    record("c5", 4, rpc="CompleteStream", prompt_tokens=10, completion_tokens=20, total_ms=50.0),
    record("r1", 5, rpc="Route", cost_usd=None),
    record("e1", 6, tier=None, error="AllTiersFailedError: ...", cost_usd=None),
]


def test_report_figures_match_the_hand_computed_ones(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "requests.db"
    store = open_store(f"sqlite:///{db}")
    store.write_batch(FIXED_LOG)
    store.close()
    config = write_config(tmp_path / "rightsize.yaml", backends, log={"url": f"sqlite:///{db}"})
    png = tmp_path / "report.png"

    assert main(["report", "--config", str(config), "--json", "--png", str(png)]) == 0

    figures = json.loads(capsys.readouterr().out)
    assert (figures["completed"], figures["routes"], figures["errors"], figures["fallbacks"]) == (5, 1, 1, 1)
    # actual: c3 + c4; all-large: (100+100*2) + (200+100*2) + (100+100*2) + (50+50*2) + (10+20*2) micro-USD
    assert figures["actual_usd"] == pytest.approx(0.00045)
    assert figures["all_large_usd"] == pytest.approx(0.0011)
    assert figures["saving_usd"] == pytest.approx(0.00065)
    assert figures["saving_pct"] == pytest.approx(100 * 0.00065 / 0.0011)
    assert figures["large_price"]["source"].startswith("config")
    tiers = {t["tier"]: t for t in figures["tiers"]}
    assert (tiers["small"]["requests"], tiers["small"]["share"]) == (3, pytest.approx(0.6))
    assert (tiers["large"]["requests"], tiers["large"]["share"]) == (2, pytest.approx(0.4))  # c4 fell back
    # p50/p95 by linear interpolation: small [50, 100, 300], large [1000, 2000].
    assert (tiers["small"]["p50_ms"], tiers["small"]["p95_ms"]) == (pytest.approx(100), pytest.approx(280))
    assert (tiers["large"]["p50_ms"], tiers["large"]["p95_ms"]) == (pytest.approx(1500), pytest.approx(1950))
    assert png.stat().st_size > 10_000

    assert main(["report", "--config", str(config), "--since", "2026-01-01T00:02:00"]) == 0
    text = capsys.readouterr().out
    assert "completed calls  3" in text and "(also 1 Route calls, 1 errors)" in text


def test_an_empty_log_reports_zeroes() -> None:
    report = build_report([], Price(1e-6, 2e-6, "test"))
    assert (report.completed, report.actual_usd, report.saving_pct, report.tiers) == (0, 0.0, None, ())


def test_the_large_price_comes_from_litellm_when_not_configured() -> None:
    price = large_price(TierSettings(model="openai/gpt-4o"))
    assert price.input_per_token > 0 and price.output_per_token > price.input_per_token
    assert "LiteLLM" in price.source
