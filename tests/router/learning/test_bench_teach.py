"""The teacher-step benchmark: its grading is exact, and it runs end to end at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_fewshot import Item
from benchmarks.teach import grade, parse_answer
from router.config.embedded import missing_requirement

ROOT = Path(__file__).resolve().parents[3]
MISSING = missing_requirement("smollm2-135m")
ITEM = Item("p", 1299.5, "EUR", "desk lamp", "s")


def test_grading_is_field_by_field_and_whole_object_exact() -> None:
    exact = grade('{"product": "Desk lamp ", "price": 1299.5, "currency": "eur"}', ITEM)
    assert exact == {"parsed": True, "whole": True, "product": True, "price": True, "currency": True}
    assert grade('Sure: {"product": "desk lamp", "price": "1,299.50", "currency": "EUR"}!', ITEM)["whole"]
    wrong_price = grade('{"product": "desk lamp", "price": 1299, "currency": "EUR"}', ITEM)
    assert not wrong_price["whole"] and not wrong_price["price"] and wrong_price["product"]
    extra_key = grade('{"product": "desk lamp", "price": 1299.5, "currency": "EUR", "qty": 1}', ITEM)
    assert all(extra_key[field] for field in ("product", "price", "currency")) and not extra_key["whole"]
    nested = grade('{"product": {"name": "desk lamp"}, "price": 1299.5}', ITEM)
    assert nested["parsed"] and nested["price"] and not nested["product"] and not nested["whole"]
    assert grade('```json\n{"product": {"name": "desk lamp", "price": 12', ITEM) == {  # cut at max_tokens
        "parsed": False, "whole": False, "product": False, "price": False, "currency": False
    }  # fmt: skip
    assert parse_answer("[1, 2]") is None and parse_answer('x {"a": 1} y') == {"a": 1}


@pytest.mark.e2e
@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_the_benchmark_teaches_and_measures_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "teach.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "teach.py"), "--smoke", "--test-items", "2"]
    result = subprocess.run(
        [*command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["approved_exemplars"] == {"t10": 20, "t30": 60}  # with and without the schema
    assert [run["taught"] for run in figures["teach"]] == [10, 10, 30, 30, 0]  # the last run: all skipped
    cells = figures["cells"]
    assert set(cells) == {f"{form}/{shots}" for form in ("text", "schema") for shots in ("none", "10", "30")}
    assert all(cell["items"] == 2 and cell["latency_ms_p50"] > 0 for cell in cells.values())
    assert cells["schema/none"]["schema_valid"] == 1.0  # the embedded tier's grammar keeps it valid
    assert cells["text/none"]["exemplars_mean"] == 0 and cells["text/30"]["exemplars_mean"] > 0
    assert cells["schema/30"]["prompt_tokens_mean"] > cells["schema/none"]["prompt_tokens_mean"]
