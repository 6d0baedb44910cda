"""Exemplar sources (curated file, approved log rows) and `rightsize export-finetune`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli import main
from router.errors import ConfigError
from router.fewshot.finetune import OpenAIChatLine, ShareGPTLine, validate_line
from router.fewshot.sources import approved_pairs, deduplicated, read_curated
from tests.router.fewshot.support import bad, good, judged, record, seeded_log, shadow_large


def test_a_curated_file_becomes_exemplars_with_stable_ids(tmp_path: Path) -> None:
    path = tmp_path / "shots.jsonl"
    path.write_text(
        json.dumps({"prompt": " Price of 'tea for 3 EUR'? ", "answer": '{"price": 3, "currency": "EUR"}'})
        + "\n\n"
        + json.dumps({"prompt": "p2", "answer": "a2", "tenant": "acme", "quality": 0.5})
        + "\n"
    )
    first, second = read_curated(path)
    assert (first.prompt, first.tenant, first.quality, first.source) == (
        "Price of 'tea for 3 EUR'?",
        None,
        1.0,
        "curated",
    )
    assert (second.tenant, second.quality) == ("acme", 0.5)
    assert first.shared and not second.shared
    assert [e.id for e in read_curated(path)] == [first.id, second.id]  # content-addressed: stable


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "p"}', "line 1: answer: Field required"),
        ('{"prompt": "p", "answer": "a", "extra": 1}', "line 1: extra: Extra inputs are not permitted"),
        ('{"prompt": "p", "answer": "a", "quality": 2}', "line 1: quality"),
        ("not json", "line 1: "),
    ],
)
def test_a_bad_curated_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "shots.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        read_curated(path)


def test_only_approved_large_tier_answers_come_from_the_log(tmp_path: Path) -> None:
    rows = [
        (record(1, "rated good", "answer one"), good(0.9)),
        (record(2, "rated bad", "wrong"), bad()),
        (record(3, "not rated", "unrated"), None),
        (record(4, "small tier rated good", "small answer", tier="small"), good()),
        (record(5, "judged, large answer in the log", "answer five"), judged()),
        (record(6, "judged small row, large answer stored", "small text", tier="small"), judged(1)),
        (record(7, "failed", None, error="BackendError: boom"), good()),
        (record(8, "redacted prompt", "x", prompt=None), good()),
        (record(9, "mail me at [EMAIL]", "sure"), good()),
        (record(10, "fallback answered by large", "answer ten", tier="small", fallback=True), good()),
        (record(11, "good but no response kept", None), good()),
    ]
    store = seeded_log(tmp_path / "log.db", rows, [shadow_large("req-6", "large answer six")])
    pairs = list(approved_pairs(store))
    assert [(p.request_id, p.answer, p.approval) for p in pairs] == [
        ("req-1", "answer one", "feedback"),
        ("req-5", "answer five", "judge"),
        ("req-6", "large answer six", "judge"),
        ("req-10", "answer ten", "feedback"),
    ]
    assert pairs[0].quality == 0.9 and pairs[1].quality == 1.0
    assert [p.request_id for p in approved_pairs(store, min_quality=0.95)] == ["req-5", "req-6", "req-10"]
    assert list(approved_pairs(store, tenant="globex")) == []
    exemplar = pairs[0].exemplar()
    assert (exemplar.id, exemplar.request_id, exemplar.tenant, exemplar.source) == (
        "log-req-1",
        "req-1",
        "acme",
        "logs",
    )
    store.close()


def test_duplicates_keep_the_best_then_newest_answer_per_tenant(tmp_path: Path) -> None:
    rows = [
        (record(1, "same prompt", "old answer"), good(0.5)),
        (record(2, "same prompt", "better answer"), good(0.9)),
        (record(3, "same prompt", "newest, worse"), good(0.6)),
        (record(4, "same prompt", "other tenant", metadata={"tenant": "globex"}), good()),
    ]
    store = seeded_log(tmp_path / "log.db", rows)
    kept = deduplicated(approved_pairs(store))
    assert [(p.tenant, p.answer) for p in kept] == [("acme", "better answer"), ("globex", "other tenant")]
    store.close()


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "tiers": {"small": {"model": "ollama_chat/llama3:8b"}, "large": {"model": "openai/gpt-4o"}},
                "log": {"url": f"sqlite:///{tmp_path / 'log.db'}"},
            }
        )
    )
    return config


def export_finetune(tmp_path: Path, fmt: str, out: Path, *extra: str) -> int:
    """`rightsize export-finetune --from-logs` with the test config, in this process; its exit status."""
    config = str(write_config(tmp_path))
    return main(
        ["export-finetune", "--from-logs", "--config", config, "--format", fmt, *extra, "--out", str(out)]
    )


@pytest.mark.parametrize(("fmt", "schema"), [("openai-chat", OpenAIChatLine), ("sharegpt", ShareGPTLine)])
def test_export_finetune_writes_schema_valid_deduplicated_pairs(
    tmp_path: Path,
    fmt: str,
    schema: type[OpenAIChatLine] | type[ShareGPTLine],
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        (record(1, "extract: 3 EUR", '{"price": 3, "currency": "EUR"}'), good()),
        (record(2, "extract: 3 EUR", '{"price": 3, "currency": "EUR"}'), good()),
        (
            record(3, "extract: 5 USD", '{"price": 5, "currency": "USD"}', metadata={"tenant": "globex"}),
            judged(),
        ),
        (record(4, "failed", None, error="boom"), good()),
        (record(5, "rated bad", "nope"), bad()),
    ]
    seeded_log(tmp_path / "log.db", rows).close()
    out = tmp_path / "train.jsonl"
    assert export_finetune(tmp_path, fmt, out) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        validate_line(line, fmt)  # type: ignore[arg-type]
        schema.model_validate_json(line)
    assert "extract: 3 EUR" in lines[0] and "extract: 5 USD" in lines[1]
    assert "wrote 2" in capsys.readouterr().err
    out_acme = tmp_path / "acme.jsonl"
    assert export_finetune(tmp_path, fmt, out_acme, "--tenant", "acme") == 0
    assert len(out_acme.read_text().splitlines()) == 1


def test_export_finetune_is_empty_with_a_clear_message_when_nothing_is_approved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded_log(
        tmp_path / "log.db",
        [(record(1, "unrated", "answer"), None), (record(2, "small", "s", tier="small"), good())],
    ).close()
    out = tmp_path / "train.jsonl"
    assert export_finetune(tmp_path, "sharegpt", out) == 0
    assert out.read_text() == ""
    assert "no approved large-tier answers" in capsys.readouterr().err


def test_the_line_schemas_reject_malformed_training_lines() -> None:
    with pytest.raises(ValueError):
        validate_line(
            '{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}',
            "openai-chat",
        )
    with pytest.raises(ValueError):
        validate_line(
            '{"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}',
            "openai-chat",
        )
    with pytest.raises(ValueError):
        validate_line('{"conversations": [{"from": "human", "value": "q"}]}', "sharegpt")
