"""`rightsize calibrate` (from logs, --tenant, --write) and `rightsize simulate` on small fixed logs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from classifier.artifacts import read_manifest
from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.cli import main
from router.config import load_config
from router.config.reload import ConfigSource
from router.requestlog import Label, LogRecord, open_store
from router.rpc.server import create_server
from tests.router.support import MODEL_DIR, TASK_PROMPT, Backends, KeyedScorer, user

VERSION = read_manifest(MODEL_DIR).version  # the served model: calibrate uses only its logged scores
CONFIG = """\
# rightsize config for the calibration tests
server:
  address: "127.0.0.1:0"    # any port
  metrics_port: null
  grace_period_s: 1

tiers:
  small:
    model: "ollama_chat/llama3:8b"
    api_base: "{small}"
    input_cost_per_token: 1.0e-7     # USD
    output_cost_per_token: 1.0e-7
  large:
    model: "openai/gpt-4o"
    api_base: "{large}"
    api_key: "sk-test"
    input_cost_per_token: 1.0e-6
    output_cost_per_token: 2.0e-6

routing:
  threshold: 0.5              # large when score >= threshold
  fallback: true
  overrides:
    - metadata: {{ tenant: acme }}   # acme pays for quality
      threshold: 0.8

models:
  dir: "{models}"
  active: "{model}"

log:
  url: "sqlite:///{db}"
"""


def write_config(tmp_path: Path, backends: Backends, **extra: str) -> Path:
    path = tmp_path / "router.yaml"
    text = CONFIG.format(
        small=backends.small.url,
        large=backends.large.url,
        models=MODEL_DIR.parent,
        model=MODEL_DIR.name,
        db=tmp_path / "requests.db",
    )
    path.write_text(text)
    return path


def log_records(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'requests.db'}")
    now = datetime.now(UTC)
    records = [
        LogRecord(
            request_id=f"r{i}",
            ts=now - timedelta(seconds=len(rows) - i),
            rpc=row.get("rpc", "Complete"),
            prompt_sha256="x",
            metadata=row.get("metadata", {}),
            score=row["score"],
            classifier_version=row.get("version", VERSION),
            prompt_tokens=row.get("prompt_tokens"),
            completion_tokens=row.get("completion_tokens"),
            rule=row.get("rule", "global"),
        )
        for i, row in enumerate(rows)
    ]
    store.write_batch(records)
    for i, row in enumerate(rows):
        if row.get("small_ok") is not None:
            assert store.set_label(f"r{i}", Label(row["small_ok"], "test"))
    store.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


FIXED_SCORES = np.random.default_rng(7).beta(2, 3, size=400).round(3)  # ties included


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.72])
def test_calibrate_from_logs_hits_the_target_share_within_one_point(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str], fraction: float
) -> None:
    config = write_config(tmp_path, backends)
    rows = [{"score": float(score)} for score in FIXED_SCORES]
    rows += [{"score": 0.99, "version": "older-model"}] * 50  # another classifier's scores do not count
    log_records(tmp_path, rows)
    code, out, err = run(
        capsys, "calibrate", "--target-large-fraction", str(fraction), "--from-logs", "--config", str(config)
    )
    assert code == 0, err
    threshold = float(out)
    assert abs(float((threshold <= FIXED_SCORES).mean()) - fraction) <= 0.01
    assert "of 400 logged requests" in err


def test_social_turns_count_in_the_share_as_small_whatever_their_score(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server sends a social turn small at any threshold, so 30 % large of all traffic, a fifth of it
    social, is 37.5 % of the rest; scoring them as tasks would have set the threshold for 12.5 %."""
    config = write_config(tmp_path, backends)
    rows = [{"score": float(score)} for score in FIXED_SCORES]
    rows += [{"score": 0.9, "rule": "social"}] * 100  # high scores ("thanks!" scores 0.75-0.8)
    log_records(tmp_path, rows)
    code, out, err = run(
        capsys, "calibrate", "--target-large-fraction", "0.3", "--from-logs", "--config", str(config)
    )
    assert code == 0, err
    assert abs(float((float(out) <= FIXED_SCORES).mean()) - 0.375) <= 0.01
    assert "of 500 logged requests (100 social turns among them" in err
    code, out, err = run(
        capsys, "simulate", "--from-logs", "--config", str(config), "--thresholds", out.strip(), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["outcomes"][0]["large_share"] == pytest.approx(0.3, abs=0.01)


def test_calibrate_for_a_tenant_uses_its_requests_and_updates_its_override_in_place(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    rows = [{"score": i / 100, "metadata": {"tenant": "acme"}} for i in range(100)]
    rows += [{"score": 0.01, "metadata": {"tenant": "other"}}] * 100
    log_records(tmp_path, rows)
    before = config.read_text()
    code, out, err = run(
        capsys,
        "calibrate",
        "--target-large-fraction",
        "0.3",
        "--from-logs",
        "--tenant",
        "acme",
        "--write",
        str(config),
    )
    assert code == 0, err
    assert out.strip() == "0.695000"  # between 0.70 (30th highest of acme's) and 0.69
    assert config.read_text() == before.replace("      threshold: 0.8", "      threshold: 0.695")
    assert "routing.overrides[0].threshold: 0.8 -> 0.695" in err
    assert load_config(config).routing.overrides[0].threshold == 0.695


def test_calibrate_write_changes_only_the_threshold_bytes_and_adds_a_new_tenant_rule_at_the_end(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    log_records(tmp_path, [{"score": i / 100, "metadata": {"tenant": "beta"}} for i in range(100)])
    before = config.read_text()
    code, _, err = run(
        capsys, "calibrate", "--target-large-fraction", "0.5", "--from-logs", "--write", str(config)
    )
    assert code == 0, err
    after = config.read_text()
    assert after == before.replace("  threshold: 0.5              #", "  threshold: 0.495              #")
    code, _, err = run(
        capsys,
        "calibrate",
        "--target-large-fraction",
        "0.1",
        "--from-logs",
        "--tenant",
        "beta",
        "--write",
        str(config),
    )
    assert code == 0, err
    rule = '    - metadata: {tenant: "beta"}\n      threshold: 0.895\n'
    anchor = "      threshold: 0.8\n"
    assert config.read_text() == after.replace(anchor, anchor + rule)
    assert [o.metadata for o in load_config(config).routing.overrides] == [
        {"tenant": "acme"},
        {"tenant": "beta"},
    ]
    assert not list(tmp_path.glob(".*"))  # no temp or check file left behind


def test_calibrate_refuses_a_global_threshold_that_a_target_share_would_ignore(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    config.write_text(
        config.read_text().replace("  fallback: true\n", "  fallback: true\n  target_large_fraction: 0.2\n")
    )
    log_records(tmp_path, [{"score": i / 100} for i in range(100)])
    before = config.read_text()
    code, _, err = run(
        capsys, "calibrate", "--target-large-fraction", "0.3", "--from-logs", "--write", str(config)
    )
    assert code == 1 and "routing.target_large_fraction is set" in err and "Traceback" not in err
    assert config.read_text() == before


def test_calibrate_without_matching_logs_says_why(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    code, _, err = run(
        capsys, "calibrate", "--target-large-fraction", "0.3", "--from-logs", "--config", str(config)
    )
    assert code == 1 and "no request log at" in err
    log_records(tmp_path, [{"score": 0.5, "version": "older-model"}])
    code, _, err = run(
        capsys, "calibrate", "--target-large-fraction", "0.3", "--from-logs", "--config", str(config)
    )
    assert code == 1 and "classifier older-model" in err and "--input" in err
    code, _, err = run(
        capsys, "calibrate", "--target-large-fraction", "0.3", "--input", "x.jsonl", "--from-logs"
    )
    assert code == 2 and "not allowed with" in err


async def test_a_running_server_applies_calibrate_write_within_2s(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    log_records(tmp_path, [{"score": i / 100} for i in range(100)])
    source = ConfigSource(config)
    server, port = create_server(source.load(), scorer=KeyedScorer(default=0.6), source=source)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RouterStub(channel)

            async def decision() -> Any:
                return (await stub.Route(pb.RouteRequest(messages=user(TASK_PROMPT)), timeout=5)).decision

            assert (await decision()).tier == "large"
            argv = ["calibrate", "--target-large-fraction", "0.2", "--from-logs", "--write", str(config)]
            assert await asyncio.to_thread(main, argv) == 0
            written = asyncio.get_running_loop().time()
            while (await decision()).tier == "large" and asyncio.get_running_loop().time() - written < 3:
                await asyncio.sleep(0.05)
            latest = await decision()
            assert (latest.tier, latest.threshold, latest.reason) == (
                "small",
                0.795,
                "global threshold 0.795",
            )
            assert asyncio.get_running_loop().time() - written < 2
    finally:
        await server.stop(0)


# Hand-computed figures; prices: small 1e-7 in and out, large 1e-6 in, 2e-6 out (USD per token).
SIM_ROWS = [
    {"score": 0.2, "prompt_tokens": 100, "completion_tokens": 50, "small_ok": 1},
    {"score": 0.4, "prompt_tokens": 200, "completion_tokens": 100, "small_ok": 0},
    {"score": 0.6, "small_ok": 0, "rpc": "Route"},  # no usage: counts for share and quality only
    {"score": 0.8, "prompt_tokens": 100, "completion_tokens": 100},  # no label: share and cost only
    {"score": 0.9, "prompt_tokens": 50, "completion_tokens": 50, "small_ok": 0},
]
EXPECTED = [
    # label, large share, cost USD, quality, PGR
    ("0.5", 0.6, 4.95e-4, 0.75, 2 / 3),  # small: r0 1.5e-5 + r1 3e-5; large: r3 3e-4 + r4 1.5e-4
    ("0.85", 0.2, 2.15e-4, 0.5, 1 / 3),  # small: r0, r1, r3 2e-5; large: r4
    ("always small", 0.0, 7.5e-5, 0.25, 0.0),
    ("always large", 1.0, 1.05e-3, 1.0, 1.0),
]


def assert_figures(payload: dict[str, Any]) -> None:
    assert (payload["rows"], payload["priced_rows"], payload["labelled_rows"]) == (5, 4, 4)
    got = [
        (o["label"], o["large_share"], o["cost_usd"], o["quality"], o["pgr"])
        for o in payload["outcomes"] + payload["baselines"]
    ]
    for row, expected in zip(got, EXPECTED, strict=True):
        assert row[0] == expected[0]
        assert row[1:] == pytest.approx(expected[1:], rel=1e-9, abs=1e-12)


def test_simulate_from_logs_gives_the_hand_computed_figures(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    log_records(tmp_path, SIM_ROWS)
    png = tmp_path / "curve.png"
    code, out, err = run(
        capsys,
        "simulate",
        "--from-logs",
        "--config",
        str(config),
        "--thresholds",
        "0.5,0.85",
        "--json",
        "--png",
        str(png),
    )
    assert code == 0, err
    assert_figures(json.loads(out))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run(capsys, "simulate", "--from-logs", "--config", str(config), "--thresholds", "0.5,0.85")
    lines = out.splitlines()
    assert "(config)" in out and lines[-4].split() == ["0.5", "60.0%", "0.000495", "0.7500", "0.6667"]
    assert lines[-1].split() == ["always", "large", "100.0%", "0.001050", "1.0000", "1.0000"]


def test_simulate_on_a_labelled_file_with_scores_matches_the_log(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    data = tmp_path / "labelled.jsonl"
    data.write_text(
        "".join(json.dumps({k: v for k, v in row.items() if k != "rpc"}) + "\n" for row in SIM_ROWS)
    )
    code, out, err = run(
        capsys,
        "simulate",
        "--input",
        str(data),
        "--config",
        str(config),
        "--thresholds",
        "0.5,0.85",
        "--json",
    )
    assert code == 0, err
    assert_figures(json.loads(out))
    code, _, err = run(capsys, "simulate", "--input", str(data), "--thresholds", "0.5,1.5")
    assert code == 2 and "outside [0, 1]" in err


def test_config_check_validates_without_serving(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, backends)
    code, out, _ = run(capsys, "config", "check", str(config))
    assert code == 0 and out.startswith(f"{config}: ok (threshold 0.5, 1 overrides")
    config.write_text(config.read_text().replace("threshold: 0.8", "threshold: eight"))
    code, out, err = run(capsys, "config", "check", str(config))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "routing.overrides.0.threshold" in err and "Traceback" not in err
