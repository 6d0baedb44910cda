"""Every escalation is a label: feedback on cascaded calls, `rightsize retrain` trains the answer-quality
head, promotes it into the head's registry, and the running server swaps it in with no failed call; `rightsize
label` judges the logged small answer instead of generating a new one."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.cli import main
from router.config import load_config
from router.learning.answer_retrain import answer_examples, logged_answer
from router.requestlog import LogRecord, open_store
from tests.router.conftest import Running, StartServer
from tests.router.learning.support import T0, labelled_log, synthetic_examples
from tests.router.standins import StandIn
from tests.router.support import MODEL_DIR, KeyedScorer, log_section, user

SHIPPED_HEAD = MODEL_DIR.parent / "verifier"
PROMPTS = 60
LARGE_ANSWER = "the large tier's correct answer"


def prompt(i: int) -> str:
    return f"Question {i:03d}: what is {i} plus {i + 1}?"


def good(i: int) -> bool:
    """Which small answers are right. Confidently wrong, unsure but right: the opposite of what the shipped
    head learned (token confidence tracks correctness there), so only a head trained on this log ranks the
    held-out answers well, and the challenger beats the champion on the log's own truth."""
    return i % 2 == 0


@pytest.fixture
def tiers() -> Iterator[tuple[StandIn, StandIn]]:
    small, large = StandIn("openai"), StandIn("openai", reply=LARGE_ANSWER)
    small.answers = {
        prompt(i)[:13]: (
            f"{2 * i + 1}" if good(i) else f"It is {3 * i} of course.",
            -1.2 if good(i) else -0.02,
        )
        for i in range(PROMPTS)
    }
    yield small, large
    small.kill()
    large.kill()


def write_cascade_config(tmp_path: Path, tiers: tuple[StandIn, StandIn], **cascade: Any) -> Path:
    """A config file in cascade mode whose answer head is a copy of the shipped one in `tmp_path`."""
    small, large = tiers
    head = tmp_path / "verifier"
    shutil.copytree(SHIPPED_HEAD, head)
    raw = {
        "server": {"address": "127.0.0.1:0", "metrics_port": 0, "grace_period_s": 2},
        "tiers": {
            "small": {"model": "hosted_vllm/smol", "api_base": small.url, "timeout": 10},
            "large": {"model": "openai/gpt-4o", "api_base": large.url, "api_key": "sk-test"},
        },
        "routing": {
            "threshold": 0.5,
            "mode": "cascade",
            # Nothing escalates: every small answer is returned, so the client's feedback rates it.
            "cascade": {"confidence": {"enabled": False}, "head": {"path": str(head), "threshold": 0.0}},
        },
        "models": {"dir": str(MODEL_DIR.parent), "active": MODEL_DIR.name, "poll_interval_s": 0.1},
        **log_section(tmp_path),
    }
    path = tmp_path / "rightsize.yaml"
    path.write_text(json.dumps({**raw, **cascade}), encoding="utf-8")
    return path


def head_versions(running: Running, request_ids: list[str]) -> list[str]:
    """The answer head version each logged request was verified by, in request order (logged ones only)."""
    store = open_store(running.server.config.log.url)
    try:
        records = [store.get(request_id) for request_id in request_ids]
    finally:
        store.close()
    return [json.loads(r.verifier_inputs or "{}").get("head_version", "") for r in records if r is not None]


async def wait_logged(running: Running, request_ids: list[str]) -> None:
    deadline = time.monotonic() + 20
    while len(head_versions(running, request_ids)) < len(request_ids):
        assert time.monotonic() < deadline, "requests were not logged"
        await asyncio.sleep(0.05)


async def test_feedback_on_cascaded_calls_retrains_the_answer_head_and_the_server_swaps_it_live(
    start_server: StartServer, tiers: tuple[StandIn, StandIn], tmp_path: Path
) -> None:
    config_path = write_cascade_config(tmp_path, tiers)
    config = load_config(config_path)
    running = await start_server(config, with_scorer=KeyedScorer({}, default=0.3))
    ids = [f"q-{i:03d}" for i in range(PROMPTS)]
    for i, request_id in enumerate(ids):
        response = await running.stub.Complete(
            pb.CompleteRequest(messages=user(prompt(i)), request_id=request_id)
        )
        assert response.decision.mode == "cascade" and not response.escalated
    await wait_logged(running, ids)
    for i, request_id in enumerate(ids):
        rating = pb.Rating.GOOD if good(i) else pb.Rating.BAD
        await running.stub.Feedback(pb.FeedbackRequest(request_id=request_id, rating=rating))
    old_version = head_versions(running, ids[:1])[0]
    assert old_version == json.loads((SHIPPED_HEAD / "manifest.json").read_text())["version"]

    served: list[str] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        n = 0
        while not stop.is_set():
            request_id = f"during-{n:04d}"
            n += 1
            try:
                await running.stub.Complete(
                    pb.CompleteRequest(messages=user(prompt(n % PROMPTS)), request_id=request_id), timeout=10
                )
                served.append(request_id)
            except grpc.aio.AioRpcError as exc:
                failures.append(exc)
            await asyncio.sleep(0.02)

    load = asyncio.get_running_loop().create_task(traffic())
    out = tmp_path / "verifier" / "candidates" / "v2"
    args = ["retrain", "--from-logs", "--config", str(config_path), "--head", "answer", "--promote"]
    status = await asyncio.to_thread(main, [*args, "--out", str(out)])
    assert status == 0  # promoted without --force: the challenger is not worse on the held-out answers
    new_version = json.loads((out / "manifest.json").read_text())["version"]
    assert new_version != old_version
    assert (tmp_path / "verifier" / "current").resolve() == out.resolve()
    report = (out / "retrain_report.md").read_text()
    assert "answer-quality head" in report and "**Challenger vs champion: not worse**" in report

    async def wait_for(version: str) -> None:
        deadline = time.monotonic() + 20
        while (head_versions(running, served) or [""])[-1] != version:
            assert time.monotonic() < deadline, f"the server never verified with {version}"
            await asyncio.sleep(0.05)

    await wait_for(new_version)
    assert (
        await asyncio.to_thread(main, ["models", "rollback", "--config", str(config_path), "--answer-head"])
        == 0
    )
    await wait_for(old_version)
    stop.set()
    await load
    assert failures == []
    versions = head_versions(running, served)
    switches = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
    # Each switch happens once, between requests: (old ...) new ... old.
    assert switches in ([old_version, new_version, old_version], [new_version, old_version])

    # The promoted head ranks this log's answers as the log says: higher P(good) for the right ones.
    from classifier.answer import AnswerScorer

    store = open_store(config.log.url)
    records = [store.get(request_id) for request_id in ids]
    store.close()
    scorer = AnswerScorer.from_path(out)
    labelled = answer_examples(r for r in records if r is not None)
    p_good = scorer.score([e.item for e in labelled])
    right = [p for p, e in zip(p_good, labelled, strict=True) if e.good]
    wrong = [p for p, e in zip(p_good, labelled, strict=True) if not e.good]
    assert min(right) > max(wrong)


def test_retrain_of_the_answer_head_needs_confirmed_small_answers(
    tiers: tuple[StandIn, StandIn], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labelled route-mode calls teach the prompt classifier, not the answer head: they kept no verified
    small answer."""
    config_path = write_cascade_config(tmp_path, tiers)
    (tmp_path / "requestlog").mkdir()
    store = open_store(load_config(config_path).log.url)
    labelled_log(store, synthetic_examples(10, seed=1))
    store.close()
    assert main(["retrain", "--from-logs", "--config", str(config_path), "--head", "answer"]) == 1
    assert "answer head's training slice has 0 good and 0 bad" in capsys.readouterr().err
    assert not (tmp_path / "verifier" / "candidates").exists()


def test_a_logged_answer_is_what_the_head_saw() -> None:
    """The head's inputs come back from the log: confidence summaries, finish reason, token count, schema,
    the consistency verifier's second answer."""
    inputs = {
        "finish_reason": "length", "completion_tokens": 7, "schema_valid": False, "logprob_tokens": 7,
        "mean_logprob": -0.4, "min_logprob": -2.0, "mean_margin": 1.5, "low_confidence_share": 0.25,
        "exemplars": 2, "sample": "a, sampled again",
    }  # fmt: skip
    record = LogRecord(
        "r", ts=T0, rpc="Complete", prompt_sha256="x", prompt="p", small_response="a",
        verifier_inputs=json.dumps(inputs),
    )  # fmt: skip
    item = logged_answer(record)
    assert item is not None and item.finish_reason == "length" and item.completion_tokens == 7
    assert item.schema_valid is False and item.exemplars == 2 and item.sample == "a, sampled again"
    features = item.confidence()
    assert features is not None and (features.mean_logprob, features.tokens) == (-0.4, 7)
    no_logprobs = LogRecord(**{**record.__dict__, "verifier_inputs": json.dumps({"logprob_tokens": 0})})
    assert logged_answer(no_logprobs).confidence() is None  # type: ignore[union-attr]
    assert logged_answer(no_logprobs).sample is None  # type: ignore[union-attr]  # consistency did not run
    assert logged_answer(LogRecord(**{**record.__dict__, "small_response": None})) is None


def test_unconfirmed_verdicts_never_label_the_prompt_classifier_unless_weighed_in() -> None:
    """The cascade's own verdict is what retraining checks: excluded by default; with a weight, a
    training-only row; a confirmed label (feedback, judge) always wins; an unverified answer has no
    verdict at all."""
    from router.learning.retrain import VERDICT_SOURCE, labelled_examples, split

    def row(i: int, **fields: Any) -> LogRecord:
        values: dict[str, Any] = {"mode": "cascade", "small_response": "a", "tier": "small", **fields}
        return LogRecord(f"v{i}", ts=T0, rpc="Complete", prompt_sha256="x", prompt=f"prompt {i}", **values)

    records = [
        row(0, escalated=False),  # stood, unconfirmed
        row(1, escalated=True),  # escalated, unconfirmed
        row(2, escalated=True, small_ok=1, label_source="judge"),  # the judge refuted the escalation
        row(3, escalated=False, escalation_reason="unverified: no time left"),
    ]
    assert [(e.text, e.small_ok) for e in labelled_examples(records)] == [("prompt 2", 1)]
    weighed = labelled_examples(records, verdict_weight=0.3)
    assert [(e.text, e.small_ok, e.source, e.weight) for e in weighed] == [
        ("prompt 2", 1, "logs", 1.0),
        ("prompt 0", 1, VERDICT_SOURCE, 0.3),
        ("prompt 1", 0, VERDICT_SOURCE, 0.3),
    ]
    confirmed = synthetic_examples(200, seed=1)
    verdicts = [replace(e, text=f"verdict {i}", source=VERDICT_SOURCE) for i, e in enumerate(confirmed[:50])]
    train, holdout = split([*confirmed, *verdicts], 0.2)
    assert all(e.source != VERDICT_SOURCE for e in holdout)
    assert sum(e.source == VERDICT_SOURCE for e in train) == 50
