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


def checks(**outcomes: str) -> str:
    return json.dumps({"checks": {v: [o, None] for v, o in outcomes.items()}})


# Cascade calls: k1 stays small (form and confidence pass), k2 escalates on confidence, k3 on the form check,
# k4 failed confidence but went out unverified, k5 went straight to large; a route-mode call is not counted.
CASCADE_LOG = [
    record("k1", 0, mode="cascade", small_response="a", escalated=False, verifier_inputs=checks(form="pass",
           confidence="pass"), prompt_tokens=100, completion_tokens=50, total_ms=100.0),
    record("k2", 1, mode="cascade", small_response="b", escalated=True, escalation_ms=400.0,
           verifier_inputs=checks(form="pass", confidence="fail"), prompt_tokens=100, completion_tokens=100,
           cost_usd=0.0003, escalation_reason="confidence: score 0.2 < 0.5"),
    record("k3", 2, mode="cascade", small_response="", escalated=True, escalation_ms=200.0,
           verifier_inputs=checks(form="fail"), prompt_tokens=100, completion_tokens=100, cost_usd=0.0003),
    record("k4", 3, mode="cascade", small_response="d", escalated=False, prompt_tokens=0, completion_tokens=0,
           verifier_inputs=checks(form="pass", confidence="fail"), escalation_reason="unverified: no time"),
    record("k5", 4, mode="cascade", tier="large", prompt_tokens=0, completion_tokens=0),
    record("k6", 5, mode="route", prompt_tokens=100, completion_tokens=50),
]  # fmt: skip


def test_report_shows_the_cascade_block_against_hand_computed_figures(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    price = Price(1e-6, 2e-6, "test")
    cascade = build_report(CASCADE_LOG, price).cascade
    assert cascade is not None
    assert (cascade.calls, cascade.verified, cascade.answered_small) == (5, 4, 2)
    assert (cascade.escalated, cascade.direct_large, cascade.unverified) == (2, 1, 1)
    assert cascade.small_share == pytest.approx(2 / 5)
    assert cascade.checked == {"confidence": 3, "form": 4}
    assert cascade.escalation_rate == {"confidence": pytest.approx(2 / 3), "form": pytest.approx(1 / 4)}
    assert cascade.actual_usd == pytest.approx(0.0006)
    assert cascade.all_large_usd == pytest.approx(0.0002 + 0.0003 + 0.0003)  # logged usage at large prices
    assert cascade.added_ms_p50 == pytest.approx(300.0) and cascade.added_ms_p95 == pytest.approx(390.0)
    assert build_report(FIXED_LOG, price).cascade is None

    db = tmp_path / "requests.db"
    store = open_store(f"sqlite:///{db}")
    store.write_batch(CASCADE_LOG)
    store.close()
    config = write_config(tmp_path / "rightsize.yaml", backends, log={"url": f"sqlite:///{db}"})
    assert main(["report", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "answered small   2   (40.0% of cascade calls, after verification; 1 unverified)" in text
    assert "added latency p50 300.0 ms, p95 390.0 ms" in text
    assert main(["report", "--config", str(config), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["cascade"]
    assert figures["escalation_rate"]["form"] == 0.25 and figures["small_share"] == 0.4
