"""`rightsize teach` with a stand-in large tier: validated answers become approved exemplars of a task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from router.cli import main
from router.fewshot.exemplars import ExemplarStore, Query
from router.fewshot.sources import approved_pairs, deduplicated
from router.requestlog import RequestLogStore, open_store
from tests.router.learning.support import write_config
from tests.router.support import Backends

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


@pytest.fixture
def files(tmp_path: Path, backends: Backends) -> dict[str, Path]:
    log = {"url": f"sqlite:///{tmp_path / 'requests.db'}"}
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("\n".join(json.dumps({"input": f"Ann number {i}"}) for i in range(4)) + "\n")
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(PERSON))
    return {
        "config": write_config(tmp_path / "rightsize.yaml", backends, log=log),
        "inputs": inputs,
        "schema": schema,
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RequestLogStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'requests.db'}")
    yield opened
    opened.close()


def teach(files: dict[str, Path], *extra: str) -> int:
    argv = ["teach", "--config", str(files["config"]), "--inputs", str(files["inputs"]), "--task", "extract"]
    return main([*argv, "--schema", str(files["schema"]), "--tenant", "acme", *extra])


def test_valid_answers_become_approved_exemplars_and_a_rerun_skips_them(
    files: dict[str, Path], backends: Backends, store: RequestLogStore, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.large.script = ['{"name": "Ann"}', "not json", '{"name": "Ann"}', '{"nome": 1}']
    assert teach(files, "--concurrency", "1", "--system", "Extract the person.") == 0
    out, err = capsys.readouterr()
    assert out.startswith("taught 2, already taught 0, invalid 2, failed 0; cost $")
    assert "] 4/4  taught 2  invalid 2" in err
    sent = backends.large.requests[0]["body"]
    assert sent["response_format"]["json_schema"] == {"name": "person", "schema": PERSON}
    assert sent["messages"][0] == {"role": "system", "content": "Extract the person."}

    pairs = deduplicated(approved_pairs(store, tenant="acme"))
    assert sorted(p.prompt for p in pairs) == ["Ann number 0", "Ann number 2"]
    assert {(p.approval, p.task, p.schema_name, p.answer) for p in pairs} == {
        ("teach", "extract", "person", '{"name": "Ann"}')
    }
    # The two that failed are asked again; the two taught are not.
    backends.large.requests.clear()
    backends.large.reply = '{"name": "Bo"}'
    assert teach(files, "--system", "Extract the person.") == 0
    assert capsys.readouterr().out.startswith("taught 2, already taught 2, invalid 0, failed 0")
    assert len(backends.large.requests) == 2


def test_the_budget_stops_new_calls(
    files: dict[str, Path], backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    backends.large.reply = '{"name": "Ann"}'  # priced: a few words at 1e-6 / 2e-6 USD per token
    assert teach(files, "--concurrency", "1", "--budget-usd", "0.000001") == 0
    out = capsys.readouterr().out
    assert out.startswith("taught 1,") and "(stopped at the budget)" in out
    assert len(backends.large.requests) == 1


def test_bad_inputs_and_schemas_are_one_line_errors(
    files: dict[str, Path], backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    files["schema"].write_text('{"type": "objekt"}')
    assert teach(files) == 1
    err = capsys.readouterr().err
    assert err.startswith("rightsize: error: response_format.json_schema is not a valid JSON Schema")
    assert err.count("\n") == 1
    files["inputs"].write_text('{"text": "x"}\n')
    files["schema"].write_text(json.dumps(PERSON))
    assert teach(files) == 1
    assert "line 1: expected a JSON string" in capsys.readouterr().err
    assert not backends.large.requests


def test_a_tasks_exemplars_go_only_to_requests_of_that_task_and_schema() -> None:
    from router.fewshot.exemplars import Exemplar

    exemplars = [
        Exemplar("a", "p1", "{}", "logs", task="extract", schema_name="person"),
        Exemplar("b", "p2", "{}", "logs", task="extract", schema_name=None),
        Exemplar("c", "p3", "plain", "logs"),
    ]
    store = ExemplarStore.from_embedded(exemplars, np.ones((3, 2), dtype=np.float32) / np.sqrt(2))

    def ids(task: str | None, schema_name: str | None) -> set[str]:
        query = Query(
            np.ones(2, dtype=np.float32) / np.sqrt(2),
            None,
            5,
            0.0,
            10_000,
            task=task,
            schema_name=schema_name,
        )
        return set(store.search(query).ids)

    assert ids("extract", "person") == {"a", "c"}
    assert ids("extract", None) == {"b", "c"}
    assert ids("chat", "person") == {"c"} and ids(None, None) == {"c"}


def test_a_logged_answer_that_failed_its_schema_never_becomes_an_exemplar(store: RequestLogStore) -> None:
    from datetime import UTC, datetime

    from router.requestlog import Label, LogRecord, prompt_digest

    for request_id, valid in (("ok", True), ("bad", False)):
        store.write_batch([LogRecord(
            request_id=request_id, ts=datetime.now(UTC), rpc="Complete", prompt_sha256=prompt_digest("p"),
            prompt=f"prompt {request_id}", tier="large", response='{"x": 1}', format_type="json_schema",
            schema_name="s", schema_valid=valid,
        )])  # fmt: skip
        store.set_label(request_id, Label(small_ok=None, source="feedback", rating="GOOD"))
    assert [pair.request_id for pair in approved_pairs(store)] == ["ok"]
