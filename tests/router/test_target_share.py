"""`routing.target_large_fraction`: resolved from logged scores or the manifest, and the policy's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.config import RouterConfig, TargetWindow
from router.config.reload import ConfigSource
from router.domain import Message, Request
from router.requestlog import LogRecord, open_store
from router.routing.policy import decide
from router.routing.thresholds import ResolvedThreshold, recent_scores, resolve, threshold_from_suggested
from router.rpc.server import create_server
from tests.router.support import TASK_PROMPT, Backends, FakeClock, KeyedScorer, config_dict, user
from tests.router.waiting import until

SUGGESTED = {"0.1": 0.7, "0.3": 0.55, "0.5": 0.45}
TIERS = {"small": {"model": "ollama_chat/llama3:8b"}, "large": {"model": "openai/gpt-4o"}}
TARGET = ResolvedThreshold(fraction=0.3, threshold=0.61, requests=1234, basis="logs")


@pytest.mark.parametrize(
    ("fraction", "threshold"),
    [
        (0.3, 0.55),
        (0.1, 0.7),
        (0.5, 0.45),
        (0.2, 0.625),  # halfway between the 0.1 and 0.3 points
        (0.0, 1.0),
        (1.0, 0.0),  # the anchors: nothing large / everything large
        (0.05, 0.85),  # between the anchor (0, 1) and (0.1, 0.7)
        (0.75, 0.225),  # between (0.5, 0.45) and the anchor (1, 0)
    ],
)
def test_suggested_thresholds_interpolate_linearly_in_the_share(fraction: float, threshold: float) -> None:
    assert threshold_from_suggested(fraction, SUGGESTED) == pytest.approx(threshold)


def test_no_suggested_thresholds_resolve_to_none() -> None:
    assert threshold_from_suggested(0.3, {}) is None
    assert resolve(0.3, [0.1] * 3, TargetWindow(min_requests=10), {}) is None


def test_enough_logged_scores_resolve_to_the_share_and_too_few_fall_back_to_the_manifest() -> None:
    scores = np.linspace(0, 1, 1000, endpoint=False)
    resolved = resolve(0.3, scores, TargetWindow(min_requests=100), SUGGESTED, "v1")
    assert resolved is not None and resolved.basis == "logs" and resolved.requests == 1000
    assert float((scores >= resolved.threshold).mean()) == pytest.approx(0.3, abs=0.001)
    expected = f"target large fraction 0.3 -> threshold {resolved.threshold:.4g} (1000 logged requests)"
    assert resolved.reason == expected
    few = resolve(0.3, scores[:99], TargetWindow(min_requests=100), SUGGESTED)
    assert few == ResolvedThreshold(0.3, 0.55, 99, "manifest")
    assert few.reason == (
        "target large fraction 0.3 -> threshold 0.55 (model's suggested thresholds; 99 logged requests)"
    )


def record(
    i: int, score: float | None, version: str = "v1", rule: str = "global", **metadata: str
) -> LogRecord:
    return LogRecord(
        request_id=f"r{i}",
        ts=datetime.now(UTC) - timedelta(seconds=100 - i),
        rpc="Route",
        prompt_sha256="x",
        metadata=metadata,
        score=score,
        rule=rule,
        classifier_version=version,
    )


def test_recent_scores_keep_the_newest_of_this_version_and_metadata() -> None:
    records = [
        record(0, 0.1),
        record(1, None),
        record(2, 0.2, "v0"),
        record(3, 0.3, tenant="a"),
        record(4, 0.4, tenant="b"),
        record(5, 0.5, tenant="a"),
    ]
    window = TargetWindow(max_requests=2)
    assert recent_scores(records, window, classifier_version="v1") == [0.4, 0.5]
    tenant_a = recent_scores(records, TargetWindow(), classifier_version="v1", metadata={"tenant": "a"})
    assert tenant_a == [0.3, 0.5]
    assert recent_scores(records, TargetWindow()) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert recent_scores([*records, record(6, 0.9, rule="social")], TargetWindow())[-1] is None


def test_social_turns_count_in_the_resolved_share_as_small() -> None:
    scores = [i / 100 for i in range(100)]  # and 100 social turns
    resolved = resolve(0.3, [*scores, *[None] * 100], TargetWindow(min_requests=100), SUGGESTED)
    assert resolved is not None and (resolved.basis, resolved.requests) == ("logs", 200)
    assert sum(score >= resolved.threshold for score in scores) == 60  # 30 % of all 200
    only_social = resolve(0.3, [None] * 150, TargetWindow(min_requests=100), SUGGESTED)
    assert only_social == ResolvedThreshold(0.3, 0.55, 150, "manifest")


def config(**routing: Any) -> RouterConfig:
    return RouterConfig.model_validate({"tiers": TIERS, "routing": routing})


def request(force_tier: str = "", **metadata: str) -> Request:
    messages = (Message("user", TASK_PROMPT),)
    return Request(messages=messages, request_id="r1", metadata=metadata, force_tier=force_tier)


OVERRIDES = [
    {"metadata": {"tenant": "acme"}, "threshold": 0.8},
    {"metadata": {"task": "extraction"}, "tier": "small"},
]
TARGET_REASON = "target large fraction 0.3 -> threshold 0.61 (1234 logged requests)"
CASES = [
    # score, request, routing, target, tier, threshold, rule, reason
    (
        0.6,
        request(),
        {"threshold": 0.5, "target_large_fraction": 0.3},
        TARGET,
        "small",
        0.61,
        "target",
        TARGET_REASON,
    ),
    (0.61, request(), {"target_large_fraction": 0.3}, TARGET, "large", 0.61, "target", TARGET_REASON),
    # the target is ignored without target_large_fraction, and a stale one (other fraction) never applies
    (0.6, request(), {"threshold": 0.5}, TARGET, "large", 0.5, "global", "global threshold 0.5"),
    (
        0.6,
        request(),
        {"threshold": 0.5, "target_large_fraction": 0.4},
        TARGET,
        "large",
        0.5,
        "global",
        "global threshold 0.5 (target large fraction 0.4 not resolved)",
    ),
    (
        0.6,
        request(),
        {"threshold": 0.5, "target_large_fraction": 0.3},
        None,
        "large",
        0.5,
        "global",
        "global threshold 0.5 (target large fraction 0.3 not resolved)",
    ),
    # overrides come before the target; the request's force before everything
    (
        0.7,
        request(tenant="acme"),
        {"target_large_fraction": 0.3, "overrides": OVERRIDES},
        TARGET,
        "small",
        0.8,
        "override[0]",
        "override[0] tenant=acme threshold=0.8",
    ),
    (
        0.9,
        request(task="extraction"),
        {"target_large_fraction": 0.3, "overrides": OVERRIDES},
        TARGET,
        "small",
        0.61,
        "override[1]",
        "override[1] task=extraction tier=small",
    ),
    (
        0.7,
        request(tenant="other"),
        {"target_large_fraction": 0.3, "overrides": OVERRIDES},
        TARGET,
        "large",
        0.61,
        "target",
        TARGET_REASON,
    ),
    (
        0.1,
        request(force_tier="large", tenant="acme"),
        {"target_large_fraction": 0.3, "overrides": OVERRIDES},
        TARGET,
        "large",
        0.8,
        "forced",
        "forced by request",
    ),
    (
        0.9,
        request(force_tier="small"),
        {"target_large_fraction": 0.3},
        TARGET,
        "small",
        0.61,
        "forced",
        "forced by request",
    ),
]


@pytest.mark.parametrize(("score", "req", "routing", "target", "tier", "threshold", "rule", "reason"), CASES)
def test_rule_precedence_with_a_target_share(
    score: float,
    req: Request,
    routing: dict[str, Any],
    target: ResolvedThreshold | None,
    tier: str,
    threshold: float,
    rule: str,
    reason: str,
) -> None:
    decision = decide(score, req, config(**routing), target=target)
    got = (decision.tier, decision.threshold, decision.rule, decision.reason)
    assert got == (tier, threshold, rule, reason)


class ManifestScorer(KeyedScorer):
    """The fake classifier with a manifest's suggested thresholds, as the real Scorer has."""

    version = "v1"

    def __init__(self, default: float) -> None:
        super().__init__(default=default)
        self.manifest = type("Manifest", (), {"suggested_thresholds": SUGGESTED})()


async def test_a_server_resolves_the_target_from_its_log_and_shows_it_in_decisions_and_metrics(
    tmp_path: Path, backends: Backends
) -> None:
    path = tmp_path / "router.yaml"
    db = tmp_path / "requests.db"
    routing = {
        "target_large_fraction": 0.3,
        "target_window": {"hours": 1, "min_requests": 50},
        "recalibrate_every_s": 1,
    }
    payload = {**config_dict(backends, **routing), "log": {"url": f"sqlite:///{db}"}}
    path.write_text(json.dumps(payload))
    source = ConfigSource(path)
    scorer = ManifestScorer(default=0.6)
    clock = FakeClock()
    server, port = create_server(source.load(), scorer=scorer, source=source, clock=clock)
    assert server.reloader is not None
    server.reloader.poll_interval_s = 0.05
    await server.start()  # no log yet: the manifest's 0.55 for 0.3
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RouterStub(channel)
            decision = (await stub.Route(pb.RouteRequest(messages=user(TASK_PROMPT)), timeout=5)).decision
            assert (decision.tier, decision.threshold) == ("large", 0.55)
            assert decision.reason == (
                "target large fraction 0.3 -> threshold 0.55 "
                "(model's suggested thresholds; 0 logged requests)"
            )

            store = open_store(f"sqlite:///{db}")
            store.write_batch([record(i, i / 100) for i in range(100)])  # scores 0.00 .. 0.99
            clock.advance(1)  # recalibrate_every_s: the schedule picks the new log up, no edit needed
            await server.target_share.check()
            decision = (await stub.Route(pb.RouteRequest(messages=user(TASK_PROMPT)), timeout=5)).decision
            # The server logs its own calls too (score 0.6): the expected threshold is over everything logged.
            logged = [r.score for r in store.iter_records() if r.score is not None]
            store.close()
        assert len(logged) >= 100
        expected = resolve(0.3, logged[: decision_count(decision.reason)], TargetWindow(min_requests=1), {})
        assert expected is not None
        assert (decision.tier, decision.threshold) == ("small", pytest.approx(expected.threshold))
        assert decision.reason == expected.reason
        sample = server.metrics.registry.get_sample_value
        assert sample("rightsize_target_threshold") == pytest.approx(expected.threshold)
        assert sample("rightsize_target_threshold_requests") == expected.requests
        assert sample("rightsize_target_large_fraction") == 0.3

        payload["routing"]["target_large_fraction"] = 0.05  # a reload resolves the new target at once
        path.write_text(json.dumps(payload))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RouterStub(channel)
            applied = {"result": "applied"}
            await until(lambda: sample("rightsize_config_reloads_total", applied) == 1)
            decision = (await stub.Route(pb.RouteRequest(messages=user(TASK_PROMPT)), timeout=5)).decision
        assert decision.reason.startswith("target large fraction 0.05 -> threshold 0.9")
    finally:
        await server.stop(0)


def decision_count(reason: str) -> int:
    """N of "(N logged requests)" in a target reason."""
    return int(reason.rsplit("(", 1)[1].split()[0])
