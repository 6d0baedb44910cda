"""Scale-out, for real on loopback: three `rightsize serve` replicas behind nginx (grpc_pass), one PostgreSQL
log (`log.sync: strict`), one models directory and one config file (mounted the way Kubernetes mounts a
ConfigMap). The tests run in order against one deployment: load, target share, promotion, config change,
and kill -9 of a replica under load."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from router.config.reload import POLL_INTERVAL_S
from router.config.settings import load_config
from router.requestlog import Label, RequestLogStore, open_store
from router.requestlog.spill import SPILL_GLOB
from router.routing.thresholds import recent_scores, resolve, window_start
from router.rpc.server import COMPLETION_HEALTH_SERVICE
from tests.conftest import run_cli
from tests.deploy.cluster import ROOT, Call, ConfigMapMount, Load, Nginx, Replica, shared_config, wait_for
from tests.router.requestlog.support import PG_URL_ENV, fresh_database
from tests.router.standins import StandIn
from tests.router.support import MODEL_DIR, Backends

pytestmark = pytest.mark.slow

REPLICAS = 3
CLIENTS = 64
POLL_S = 0.5  # models.poll_interval_s of the shared config
# Beyond the poll interval, a replica loads and verifies the new classifier: 0.6 s alone, but 12-13 s was
# measured here with 64 clients on three replicas, the retrain and other jobs sharing two cores (load ~20).
MARGIN_S = 20.0
TARGET = 0.3
EASY = ["What is the capital of {}?", "Translate '{}' into French.", "Spell the word {} backwards."]
HARD = [
    "Design a fault-tolerant distributed system for {}: analyse replication, consensus and failure modes "
    "step by step, with proofs of correctness.",
    "Derive and prove the asymptotic complexity of an optimal algorithm for {}, then implement it in Rust "
    "with a full test suite and explain every trade-off.",
]
TOPICS = [
    "Peru",
    "Norway",
    "Kenya",
    "Japan",
    "Chile",
    "Egypt",
    "Canada",
    "India",
    "Spain",
    "Ghana",
    "Nepal",
    "Cuba",
    "Fiji",
    "Oman",
    "Laos",
    "Mali",
    "Iraq",
    "Iran",
    "Chad",
    "Togo",
    "Niger",
    "Yemen",
    "Qatar",
    "Malta",
    "Benin",
    "Gabon",
    "Haiti",
    "Italy",
    "Libya",
    "Palau",
    "Samoa",
    "Sudan",
    "Tonga",
    "Wales",
    "Aruba",
    "Belize",
    "Bhutan",
    "Brazil",
    "Brunei",
    "Cyprus",
    "France",
    "Greece",
    "Guinea",
    "Guyana",
    "Israel",
    "Jordan",
    "Kosovo",
    "Kuwait",
    "Latvia",
    "Malawi",
]
PROMPTS = [t.format(topic) for topic in TOPICS for t in EASY] + [
    t.format(f"{topic} logistics") for topic in TOPICS for t in HARD
]  # 150 easy + 100 hard, all distinct


@dataclass
class Deployment:
    directory: Path
    log_url: str
    mount: ConfigMapMount
    config: dict[str, Any]
    replicas: list[Replica]
    nginx: Nginx
    store: RequestLogStore
    models_dir: Path

    def load(self, phase: str, clients: int = CLIENTS, limit: int | None = None) -> Load:
        return Load(self.nginx.address, PROMPTS, clients=clients, phase=phase, limit=limit).start()

    def stored(self, calls: list[Call]) -> dict[str, Any]:
        """The log's records of these calls, by request id (a query per call id, once)."""
        ids = [call.request_id for call in calls]
        with psycopg.connect(self.log_url) as conn:
            rows = conn.execute(
                "SELECT request_id, replica_id, classifier_version, tier, threshold, ts FROM requests"
                " WHERE request_id = ANY(%s)",
                (ids,),
            ).fetchall()
        return {row[0]: row for row in rows}

    def reconfigure(self, **routing: Any) -> None:
        self.config = {**self.config, "routing": routing}
        self.mount.write(self.config)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(f'{PG_URL_ENV} is not set: run `eval "$(scripts/ci_postgres.sh)"` to start PostgreSQL')
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (`apt-get install nginx-light`; .ci/run does)")
    directory = tmp_path_factory.mktemp("scale-out")
    models_dir = directory / "models"
    shutil.copytree(MODEL_DIR, models_dir / "default")
    backends = Backends(StandIn("ollama"), StandIn("openai"))
    replicas: list[Replica] = []
    nginx: Nginx | None = None
    with fresh_database(admin_url, "scale_out") as log_url:
        mount = ConfigMapMount(directory / "config")
        config = shared_config(directory, log_url=log_url, models_dir=models_dir, standins=backends)
        mount.write(config)
        store = open_store(log_url)
        try:
            store.migrate()  # once, before the replicas race for it (they would serialise on a lock anyway)
            replicas = [Replica(mount.path).start() for _ in range(REPLICAS)]
            for replica in replicas:
                replica.wait_ready()
            nginx = Nginx(directory / "nginx", [replica.port for replica in replicas])
            yield Deployment(directory, log_url, mount, config, replicas, nginx, store, models_dir)
        finally:
            if nginx is not None:
                nginx.stop()
            for replica in replicas:
                replica.stop()
            store.close()
            backends.small.kill()
            backends.large.kill()


def _assert_logged_once(deployment: Deployment, answered: list[Call]) -> dict[str, Any]:
    stored = deployment.stored(answered)
    missing = {call.request_id for call in answered} - set(stored)
    assert not missing, f"{len(missing)} answered calls are not in PostgreSQL, e.g. {sorted(missing)[:3]}"
    with psycopg.connect(deployment.log_url) as conn:
        (rows,) = conn.execute(
            "SELECT COUNT(*) FROM requests WHERE request_id = ANY(%s)", ([c.request_id for c in answered],)
        ).fetchone()
    assert rows == len(answered)  # exactly once (request_id is the key; a retry adds no row)
    return stored


def test_load_through_the_balancer_reaches_every_replica_and_logs_each_call_once(
    deployment: Deployment,
) -> None:
    load = deployment.load("load", limit=1500)
    calls = load.wait()
    assert not load.failed, load.failed[:3]
    stored = _assert_logged_once(deployment, calls)
    by_replica = Counter(row[1] for row in stored.values())
    assert set(by_replica) == {replica.replica_id for replica in deployment.replicas}, by_replica
    assert min(by_replica.values()) >= len(calls) / REPLICAS / 3, by_replica  # round robin, roughly even


def test_rightsize_health_reports_serving_unknown_and_unreachable_in_one_line(deployment: Deployment) -> None:
    replica = deployment.replicas[0]
    wait_for(
        lambda: (
            run_cli("health", "--address", replica.address, "--service", COMPLETION_HEALTH_SERVICE).returncode
            == 0
        ),
        60,
        "Complete to be SERVING (LiteLLM loaded)",
        0.5,
    )
    through = run_cli("health", "--address", deployment.nginx.address, "--service", "rightsize.v1.Router")
    assert (through.returncode, through.stdout.strip()) == (
        0, f"rightsize.v1.Router at {deployment.nginx.address}: SERVING"
    )  # fmt: skip
    unknown = run_cli("health", "--address", replica.address, "--service", "rightsize.v1.Nope")
    assert unknown.returncode == 1 and "SERVICE_UNKNOWN" in unknown.stdout
    nobody = run_cli("health", "--address", "127.0.0.1:1", "--timeout", "2")
    assert nobody.returncode == 1 and nobody.stderr.startswith("rightsize: error: cannot reach the router")
    assert len(nobody.stderr.strip().splitlines()) == 1


def _expected_threshold(deployment: Deployment, version: str) -> float:
    """What `routing.target_large_fraction` resolves to on the shared log, computed here independently."""
    config = load_config(deployment.mount.path)
    window = config.routing.target_window
    scores = recent_scores(
        deployment.store.iter_records(since=window_start(window)), window, classifier_version=version
    )
    resolved = resolve(TARGET, scores, window, {}, version)
    assert resolved is not None and resolved.basis == "logs"
    return resolved.threshold


def test_the_target_share_resolves_from_the_shared_log_to_one_threshold_and_meets_it(
    deployment: Deployment,
) -> None:
    version = deployment.replicas[0].route(PROMPTS[0], "probe-target").decision.classifier_version
    window = {"hours": 1, "max_requests": 1000, "min_requests": 250}
    deployment.reconfigure(target_large_fraction=TARGET, target_window=window, recalibrate_every_s=1)
    # Enough traffic (every prompt, evenly) for the window, then quiet, so every replica reads the same log.
    deployment.load("target-fill", limit=1000).wait()

    def converged() -> bool:
        thresholds = {replica.metric("rightsize_target_threshold") for replica in deployment.replicas}
        counts = {replica.metric("rightsize_target_threshold_requests") for replica in deployment.replicas}
        return (
            len(thresholds) == 1
            and counts == {1000}
            and thresholds == {_expected_threshold(deployment, version)}
        )

    wait_for(converged, 20, "every replica to resolve the same threshold from the log", 0.25)
    check = deployment.load("target-check", clients=16, limit=2 * len(PROMPTS)).wait()
    assert not [call for call in check if not call.ok]
    large = sum(call.tier == "large" for call in check) / len(check)
    print(f"target {TARGET}: large share {large:.3f} over {len(check)} calls on {REPLICAS} replicas")
    assert abs(large - TARGET) <= 0.02
    stored = deployment.stored(check)
    assert {row[1] for row in stored.values()} == {replica.replica_id for replica in deployment.replicas}


def _label_the_log(deployment: Deployment) -> int:
    """A judge's verdicts on one logged record per prompt: easy prompts are fine on small, hard ones not."""
    hard = set(PROMPTS[len(TOPICS) * len(EASY) :])
    latest: dict[str, str] = {}
    for record in deployment.store.iter_records():
        if record.prompt in PROMPTS:
            latest[record.prompt] = record.request_id
    for prompt, request_id in latest.items():
        assert deployment.store.set_label(request_id, Label(int(prompt not in hard), source="judge"))
    return len(latest)


def test_a_promotion_reaches_every_replica_within_the_poll_interval_with_no_failed_call(
    deployment: Deployment,
) -> None:
    deployment.reconfigure(threshold=0.5)  # the target share off: its log reads would compete for the cores
    wait_for(
        lambda: all(
            r.route(PROMPTS[0], f"probe-{time.monotonic_ns()}").decision.threshold == 0.5
            for r in deployment.replicas
        ),
        POLL_INTERVAL_S + MARGIN_S,
        "every replica to drop the target share",
    )
    old_version = deployment.replicas[0].route(PROMPTS[0], "probe-before").decision.classifier_version
    assert _label_the_log(deployment) == len(PROMPTS)
    pointer = deployment.models_dir / "current"
    load = deployment.load("promote")
    try:
        retrain = subprocess.Popen(
            [sys.executable, "-m", "router", "retrain", "--config", str(deployment.mount.path)]
            + ["--from-logs", "--promote", "--force"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: pointer.is_symlink() or retrain.poll() is not None, 240, "the promotion", 0.01)
        promoted_at = time.monotonic()
        output = retrain.communicate(timeout=60)[0]
        assert retrain.returncode == 0, output
        switched: dict[str, float] = {}

        def all_switched() -> bool:
            for number, replica in enumerate(deployment.replicas):
                if replica.replica_id not in switched:
                    decision = replica.route(PROMPTS[0], f"probe-{number}-{time.monotonic_ns()}").decision
                    if decision.classifier_version != old_version:
                        switched[replica.replica_id] = time.monotonic() - promoted_at
            return len(switched) == REPLICAS

        wait_for(all_switched, POLL_S + MARGIN_S, "every replica to serve the promoted classifier", 0.02)
        assert max(switched.values()) <= POLL_S + MARGIN_S, switched
        all_at = time.monotonic()
        time.sleep(1.0)  # traffic after the switch, to check that nobody answers with the old version
    finally:
        calls = load.stop()
    assert not load.failed, load.failed[:3]
    stored = _assert_logged_once(deployment, calls)
    versions_after = {stored[call.request_id][2] for call in load.answered if call.finished > all_at + 0.2}
    assert versions_after and old_version not in versions_after, versions_after
    assert len(versions_after) == 1
    print(f"promotion reached the replicas after {sorted(switched.values())} s (poll {POLL_S} s)")
    for replica in deployment.replicas:
        assert replica.serve is not None
        print(*(line for line in replica.serve.lines if "now serving" in line), sep="\n")


def test_a_config_change_reaches_every_replica_with_no_failed_call(deployment: Deployment) -> None:
    load = deployment.load("config")
    try:
        time.sleep(0.5)
        changed_at = time.monotonic()
        deployment.reconfigure(threshold=0.65)  # the kubelet's ..data symlink swap

        def all_changed() -> bool:
            return all(
                replica.route(PROMPTS[0], f"probe-cfg-{n}-{time.monotonic_ns()}").decision.threshold == 0.65
                for n, replica in enumerate(deployment.replicas)
            )

        wait_for(all_changed, POLL_INTERVAL_S + MARGIN_S, "every replica to apply the new threshold")
        took = time.monotonic() - changed_at
        time.sleep(0.5)
    finally:
        calls = load.stop()
    assert not load.failed, load.failed[:3]
    _assert_logged_once(deployment, calls)
    late = [call for call in load.answered if call.finished > changed_at + took + 0.2]
    assert late and {call.threshold for call in late} == {0.65}
    print(f"config change reached every replica after {took:.2f} s (reload poll {POLL_INTERVAL_S} s)")


def test_kill_9_of_a_replica_under_load_loses_no_answered_call_and_its_spill_is_replayed(
    deployment: Deployment,
) -> None:
    deployment.reconfigure(threshold=0.5)
    victim = deployment.replicas[1]
    promoted = deployment.replicas[0].route(PROMPTS[0], "probe-promoted").decision.classifier_version
    assert (deployment.models_dir / "current").is_symlink()
    spill_dir = deployment.directory / "spill"
    load = deployment.load("kill")
    try:
        wait_for(lambda: len(load.calls) >= 200, 60, "load before the kill")
        # The log stalls (a table lock longer than log.timeout_ms): strict answers now wait for the spill.
        with psycopg.connect(deployment.log_url) as locker:
            locker.execute("LOCK TABLE requests IN EXCLUSIVE MODE")
            victim_file = f"-{victim.pid}.jsonl"
            # Kill only once the victim has answered a call it spilled: that call's only copy is its own (a
            # call spilled but not yet answered when it dies is retried, and a survivor may log it first).
            wait_for(
                lambda: _spilled_ids(spill_dir, victim_file) & {call.request_id for call in load.answered},
                30,
                "the victim to answer a call it spilled",
            )
            before_kill = len(load.calls)
            victim.kill()
            killed_at = time.monotonic()
            victim_spilled = _spilled_ids(spill_dir, victim_file)  # nobody can replay while the lock holds
            wait_for(lambda: len(load.calls) >= before_kill + 100, 60, "load after the kill")
        # The lock is released: replicas replay their spill files, and the dead one's (no longer flock'd).
        wait_for(lambda: len(load.answered) >= before_kill + 300, 60, "load around the dead replica")
        victim.start().wait_ready()  # the same port: nginx sends it traffic again
        restarted_at = time.monotonic()
        wait_for(lambda: not any(spill_dir.glob(SPILL_GLOB)), 60, "every spill file to be replayed")
        time.sleep(0.5)
    finally:
        calls = load.stop()
    print(f"kill -9 under load: {len(load.answered)} answered, {len(load.failed)} failed")
    assert not load.failed, load.failed[:3]
    stored = _assert_logged_once(deployment, calls)
    with psycopg.connect(deployment.log_url) as conn:  # the check from outside: rows == answered calls
        (rows,) = conn.execute("SELECT COUNT(*) FROM requests WHERE request_id LIKE 'kill-%'").fetchone()
    assert rows == len(load.answered)
    versions = {
        r.route(PROMPTS[0], f"probe-v-{n}").decision.classifier_version
        for n, r in enumerate(deployment.replicas)
    }
    assert versions == {promoted}, versions  # the restarted replica serves the promoted classifier too
    survivors = {replica.replica_id for replica in deployment.replicas if replica is not victim}
    routed_around = [
        call
        for call in load.answered
        if killed_at + 0.5 < call.finished < restarted_at and call.request_id not in victim_spilled
    ]
    assert routed_around and {stored[call.request_id][1] for call in routed_around} <= survivors
    # What the victim had spilled before it died is in the log once. A call it spilled but had not answered
    # yet was retried by its client on a survivor, which logged it too: whichever copy came first is kept.
    replayed = deployment.stored([Call(request_id, "", True, 0.0) for request_id in victim_spilled])
    assert set(replayed) == victim_spilled
    assert victim.replica_id in {row[1] for row in replayed.values()}


def _spilled_ids(spill_dir: Path, suffix: str) -> set[str]:
    """Request ids in the spill files whose names end in `suffix` (a cut-short last line is skipped)."""
    ids = set()
    for path in spill_dir.glob(SPILL_GLOB):
        if path.name.endswith(suffix):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    ids.add(json.loads(line)["request_id"])
    return ids
