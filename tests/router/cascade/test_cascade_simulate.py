"""`rightsize simulate --cascade` and `calibrate --target-escalation-rate` replay a hand-made log of cascade
calls (each verifier's logged outcome and value) under other head and confidence thresholds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from router.requestlog import Label, LogRecord, open_store
from tests.router.support import Backends
from tests.router.test_calibrate_simulate import VERSION, run, write_config

# (checks, small_ok label): the log a cascade server writes (verifier_inputs "checks": verifier -> [outcome,
# value]); the head did not run after a failed form or confidence check, as on the server.
ROWS: list[tuple[dict[str, list[Any]], int | None]] = [
    ({"form": ["pass", None], "confidence": ["pass", 0.9], "head": ["pass", 0.8]}, 1),
    ({"form": ["pass", None], "confidence": ["pass", 0.8], "head": ["fail", 0.3]}, 0),
    ({"form": ["pass", None], "confidence": ["pass", 0.7], "head": ["pass", 0.6]}, 0),
    ({"form": ["fail", 24.0]}, None),
    ({"form": ["pass", None], "confidence": ["fail", 0.2]}, None),
    ({}, None),  # score at or above direct_large: straight to the large tier
]


def log_cascade(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'requests.db'}")
    now = datetime.now(UTC)
    records = [
        LogRecord(
            request_id=f"c{i}",
            ts=now - timedelta(seconds=10 - i),
            rpc="Complete",
            prompt_sha256="x",
            score=0.95 if not checks else 0.3,
            classifier_version=VERSION,
            mode="cascade",
            escalated=any(pair[0] == "fail" for pair in checks.values()) if checks else None,
            verifier_inputs=json.dumps({"checks": checks}) if checks else None,
        )
        for i, (checks, _) in enumerate(ROWS)
    ]
    route = LogRecord(request_id="plain", ts=now, rpc="Complete", prompt_sha256="x", score=0.1, mode="route")
    store.write_batch([*records, route])
    for i, (_, small_ok) in enumerate(ROWS):
        if small_ok is not None:
            assert store.set_label(f"c{i}", Label(small_ok, "test"))
    store.close()


@pytest.fixture
def config(tmp_path: Path, backends: Backends) -> Path:
    path = write_config(tmp_path, backends)
    log_cascade(tmp_path)
    return path


def test_simulate_cascade_replays_the_head_and_confidence_thresholds(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--from-logs", "--config", str(config), "--cascade", "--thresholds", "0,0.5,0.7"]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert (payload["rows"], payload["verified"], payload["labelled"]) == (6, 5, 3)  # the route row left out
    figures = [
        (o["head_threshold"], o["escalation_rate"], o["small_share"], o["quality"], o["unreplayed"])
        for o in payload["outcomes"]
    ]
    assert figures == [
        (0.0, pytest.approx(2 / 5), pytest.approx(3 / 6), pytest.approx(1 / 3), 0),
        (0.5, pytest.approx(3 / 5), pytest.approx(2 / 6), pytest.approx(2 / 3), 0),
        (0.7, pytest.approx(4 / 5), pytest.approx(1 / 6), pytest.approx(1.0), 0),
    ]
    # Other confidence thresholds: 0.75 fails the 0.7 answer; at 0.1 the 0.2 answer would have reached
    # the head, whose value the log lacks: counted escalated and reported.
    code, out, err = run(capsys, *argv[:-1], "0.5", "--confidence-thresholds", "0.1,0.75", "--json")
    assert code == 0, err
    outcomes = json.loads(out)["outcomes"]
    assert [(o["confidence_threshold"], o["escalation_rate"], o["unreplayed"]) for o in outcomes] == [
        (0.1, pytest.approx(3 / 5), 1),
        (0.75, pytest.approx(4 / 5), 0),
    ]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and out.splitlines()[0] == "cascade calls 6; small answers verified 5; labelled 3" + (
        " (quality: small_ok of answers kept small, large assumed good enough)"
    )
    assert out.splitlines()[-2].split() == ["0.5", "logged", "60.0%", "33.3%", "0.6667", "0"]


@pytest.mark.parametrize(("rate", "threshold", "escalated"), [(0.6, 0.6, "60.0%"), (0.5, 0.3, "40.0%")])
def test_calibrate_suggests_the_head_threshold_for_a_target_escalation_rate(
    config: Path, capsys: pytest.CaptureFixture[str], rate: float, threshold: float, escalated: str
) -> None:
    argv = ["calibrate", "--from-logs", "--config", str(config), "--target-escalation-rate", str(rate)]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert float(out.strip()) == threshold and f"escalates {escalated} of 5 verified small answers" in err


def test_cascade_replay_without_logs_is_a_one_line_error(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    code, _, err = run(capsys, "simulate", "--input", str(prompts), "--cascade", "--thresholds", "0.5")
    assert code == 1 and err.strip().endswith("it replays the logged verifier values")
    code, _, err = run(
        capsys,
        "calibrate",
        "--config",
        str(config),
        "--from-logs",
        "--target-escalation-rate",
        "0.5",
        "--write",
        str(config),
    )
    assert code == 1 and "--write" in err and len(err.strip().splitlines()) == 1


def test_a_logged_consistency_failure_replays_as_an_escalation_at_any_head_threshold() -> None:
    from router.routing.simulation import CascadeRow, simulate_cascade

    row = CascadeRow({"form": ("pass", None), "confidence": ("pass", 0.9), "consistency": ("fail", 0.3)}, 1)
    passed = CascadeRow({"confidence": ("pass", 0.9), "consistency": ("pass", 1.0), "head": ("pass", 0.7)}, 1)
    for outcome in simulate_cascade([row, passed], [0.0, 0.5, 0.8], [None]):
        assert outcome.unreplayed == 0 and outcome.quality == 1.0
        assert outcome.escalation_rate == (0.5 if outcome.head_threshold < 0.7 else 1.0)
