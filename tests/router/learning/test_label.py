"""`rightsize label` against a stand-in judge: verdicts stored, malformed replies retried once, budget cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from router.cli import main
from router.learning.judge import MalformedVerdictError, Verdict, parse_verdict
from router.requestlog import Label, LogRecord, RequestLogStore, ShadowAnswer, open_store, prompt_digest
from tests.router.learning.support import T0, write_config
from tests.router.support import LARGE_REPLY, SMALL_REPLY, Backends

# Records without a logged score keep the log's order under `uncertainty`, which the scripted replies need.
IN_LOG_ORDER = ["--strategy", "uncertainty"]
OK = '{"small_ok": true, "reason": "same facts"}'
NOT_OK = '{"small_ok": false, "reason": "misses the second part"}'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RequestLogStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'requests.db'}")
    yield opened
    opened.close()


@pytest.fixture
def config(tmp_path: Path, backends: Backends) -> Path:
    log = {"url": f"sqlite:///{tmp_path / 'requests.db'}"}
    return write_config(tmp_path / "rightsize.yaml", backends, log=log)


def log_requests(store: RequestLogStore, count: int, **fields: object) -> list[str]:
    records = [
        LogRecord(request_id=f"r{i}", ts=T0 + timedelta(seconds=i), rpc="Complete", prompt=f"question {i}",
                  prompt_sha256=prompt_digest(f"question {i}"), tier="small", model="ollama_chat/llama3:8b",
                  **fields)  # type: ignore[arg-type]
        for i in range(count)
    ]  # fmt: skip
    store.write_batch(records)
    return [r.request_id for r in records]


def judge_calls(backends: Backends) -> list[dict[str, object]]:
    return [r["body"] for r in backends.large.requests if "Answer A" in json.dumps(r["body"])]


def test_label_judges_both_answers_and_stores_verdict_model_and_cost(
    store: RequestLogStore, config: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = log_requests(store, 3)
    store.set_label("r2", Label(small_ok=None, source="feedback", rating="GOOD", comment="nice"))
    store.add_answer(ShadowAnswer("r1", "large", "openai/gpt-4o", T0, response="shadow answer"))
    # r0: a reference answer, then a malformed verdict and its retry; r1: the shadow answer is reused.
    backends.large.script = [LARGE_REPLY, "Sure! small_ok: yes", OK, NOT_OK, LARGE_REPLY, OK]

    assert main(["label", "--from-logs", "--config", str(config), *IN_LOG_ORDER]) == 0

    labels: dict[str, Any] = {i: store.get(i) for i in ids}
    assert [(labels[i].small_ok, labels[i].label_source) for i in ids] == [
        (1, "judge"),
        (0, "judge"),
        (1, "judge"),
    ]
    assert labels["r0"].judge_model == "openai/gpt-4o" and labels["r0"].judge_reason == "same facts"
    # r0's verdict took two judge calls
    assert labels["r0"].judge_cost_usd and labels["r0"].judge_cost_usd > labels["r1"].judge_cost_usd
    assert (labels["r2"].feedback_rating, labels["r2"].feedback_comment) == ("GOOD", "nice")  # kept
    # Each small answer was generated once by the small tier and kept for the next run.
    assert len([r for r in backends.small.requests if r["path"] == "/api/chat"]) == 3
    assert [a.tier for a in store.answers("r1")] == ["large", "small"]
    judged = judge_calls(backends)
    assert len(judged) == 4
    assert SMALL_REPLY in json.dumps(judged[0]) and LARGE_REPLY in json.dumps(judged[0])
    assert "shadow answer" in json.dumps(judged[2])
    assert "labelled 3 of 3" in capsys.readouterr().out


def test_answers_and_reasons_the_teacher_stores_are_masked_by_log_redact(
    store: RequestLogStore, tmp_path: Path, backends: Backends
) -> None:
    log = {"url": f"sqlite:///{tmp_path / 'requests.db'}", "redact": {"builtin": ["email"]}}
    config = write_config(tmp_path / "redacting.yaml", backends, log=log)
    log_requests(store, 1)
    backends.small.reply = "ask ann@example.com"
    backends.large.script = ["mail bob@example.org", '{"small_ok": true, "reason": "both name carol@x.io"}']
    assert main(["label", "--from-logs", "--config", str(config), *IN_LOG_ORDER]) == 0
    answers = {answer.tier: answer.response for answer in store.answers("r0")}
    assert answers == {"small": "ask [EMAIL]", "large": "mail [EMAIL]"}
    record = store.get("r0")
    assert record is not None and (record.small_ok, record.judge_reason) == (1, "both name [EMAIL]")


def test_a_verdict_malformed_twice_leaves_the_request_unlabelled(
    store: RequestLogStore, config: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    log_requests(store, 1)
    backends.large.script = [LARGE_REPLY, "yes", '{"small_ok": "yes", "reason": "x"}']
    assert main(["label", "--from-logs", "--config", str(config), *IN_LOG_ORDER]) == 0
    record = store.get("r0")
    assert record is not None and record.small_ok is None
    assert "malformed verdicts 1" in capsys.readouterr().out


def test_the_budget_stops_the_run_cleanly(
    store: RequestLogStore, config: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    log_requests(store, 5)
    backends.large.reply = OK  # reference answers and verdicts alike; every request costs the same
    assert main(["label", "--from-logs", "--config", str(config), *IN_LOG_ORDER, "--sample", "5"]) == 0
    first = store.get("r0")
    assert first is not None and first.small_ok == 1
    cost_per_request = capsys.readouterr().out
    # A fresh log, and a budget for two and a half requests: exactly two are labelled.
    for request_id in (f"r{i}" for i in range(5)):
        store.set_label(request_id, Label(small_ok=None, source="reset"))
    spent = float(cost_per_request.split("spent $")[1].split()[0]) / 5
    assert (
        main(
            ["label", "--from-logs", "--config", str(config), *IN_LOG_ORDER, "--budget-usd", str(spent * 2.5)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "labelled 2 of 5" in out and "stopped at the budget" in out
    assert sum(store.get(f"r{i}").small_ok is not None for i in range(5)) == 2  # type: ignore[union-attr]


def test_the_diverse_strategy_keeps_its_embedding_cache_in_the_state_directory_not_the_models_one(
    store: RequestLogStore, config: Path, backends: Backends, tmp_path: Path
) -> None:
    """The diverse order embeds the prompts; with the default `models.dir` (the package's models/ directory)
    the cache goes next to the request log's state (log.spill_dir's parent), not into models/."""
    from router.config import DEFAULT_MODELS_DIR

    def snapshot() -> list[tuple[str, int]]:
        return sorted((str(p), p.stat().st_mtime_ns) for p in DEFAULT_MODELS_DIR.rglob("*"))

    log_requests(store, 3)
    backends.large.reply = OK
    before = snapshot()
    assert main(["label", "--from-logs", "--config", str(config), "--strategy", "diverse"]) == 0
    assert (tmp_path / "var" / "rightsize" / "cache" / "embeddings.npz").is_file()
    assert snapshot() == before
    assert all(store.get(f"r{i}").small_ok == 1 for i in range(3))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [(OK, Verdict(True, "same facts")), (' {"reason": "r", "small_ok": false}\n', Verdict(False, "r"))],
)
def test_parse_verdict_accepts_exactly_the_format(text: str, verdict: Verdict) -> None:
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yes",
        "```json\n" + OK + "\n```",
        '{"small_ok": 1, "reason": "r"}',
        '{"small_ok": true}',
        '{"small_ok": true, "reason": "r", "confidence": 0.9}',
        "[true]",
    ],
)
def test_parse_verdict_rejects_anything_else(text: str) -> None:
    with pytest.raises(MalformedVerdictError):
        parse_verdict(text)


def test_labelling_order_puts_scores_near_the_threshold_or_unexplored_prompts_first() -> None:
    import numpy as np

    from router.learning.judge import labelling_order

    def record(i: int, score: float | None) -> LogRecord:
        threshold = None if score is None else 0.5
        return LogRecord(request_id=f"r{i}", ts=T0, rpc="Route", prompt=f"p{i}", prompt_sha256="x",
                         tier="small", score=score, threshold=threshold)  # fmt: skip

    records = [record(0, 0.95), record(1, None), record(2, 0.49), record(3, 0.2)]
    order = list(labelling_order(records, "uncertainty", [], lambda texts: None))
    assert [r.request_id for r in order] == ["r2", "r3", "r0", "r1"]
    # p0 and p1 sit where a labelled prompt already is; p2 and p3 are new ground.
    space = {"p0": [1.0, 0, 0], "p1": [1.0, 0, 0], "p2": [0, 1.0, 0], "p3": [0, 0, 1.0], "seen": [1.0, 0, 0]}

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([space[t] for t in texts])

    order = list(labelling_order(records, "diverse", ["seen"], embed))
    assert {r.request_id for r in order[:2]} == {"r2", "r3"}
    order = list(labelling_order(records, "typical", ["seen"], embed, 0, 3))
    assert order[0].request_id in {"r2", "r3"} and {r.request_id for r in order} == {"r0", "r1", "r2", "r3"}
    assert sorted(r.request_id for r in labelling_order(records, "random", [], lambda t: None)) == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]


def test_label_confirms_or_refutes_a_cascade_verdict_from_the_logged_answers(
    store: RequestLogStore, config: Path, backends: Backends
) -> None:
    """An escalated cascade call kept both answers: the judge compares them and nothing is generated, so
    the verdict is confirmed (or refuted) for the price of one judge call."""
    log_requests(
        store, 1, mode="cascade", escalated=True, escalation_reason="confidence: score 0.2 < 0.5",
        verifier_score=0.2, small_response="17 * 23 is 381.", response="17 * 23 is 391.",
    )  # fmt: skip
    backends.large.script = [NOT_OK]  # the verdict was right: the small answer was wrong

    assert main(["label", "--from-logs", "--config", str(config), *IN_LOG_ORDER]) == 0

    record = store.get("r0")
    assert record is not None and (record.small_ok, record.label_source) == (0, "judge")
    assert backends.small.requests == []  # the small answer came from the log
    assert len(backends.large.requests) == 1  # only the judge's call: the large answer came from the log
    judged = json.dumps(judge_calls(backends)[0])
    assert "17 * 23 is 381." in judged and "17 * 23 is 391." in judged
