"""The few-shot lift evaluation runs end to end at a tiny size, and its task grading is exact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_fewshot import Item, grade, make_items
from router.config.embedded import missing_requirement

ROOT = Path(__file__).resolve().parents[3]
MISSING = missing_requirement("smollm2-135m")


def test_items_are_deterministic_distinct_and_exactly_graded() -> None:
    items = make_items(200, seed=3)
    assert items == make_items(200, seed=3) and items != make_items(200, seed=4)
    assert len({item.prompt for item in items}) == 200
    item = Item("p", 1299.5, "EUR")
    assert grade('Sure! {"price": 1299.5, "currency": "eur"} hope it helps', item)
    assert grade('{"price": "1,299.50", "currency": "EUR"}', item)
    assert not grade('{"price": 1299, "currency": "EUR"}', item)
    assert not grade('{"price": 1299.5, "currency": "€"}', item)
    assert not grade("1299.5 EUR", item)


@pytest.mark.e2e
@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_the_lift_evaluation_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "fewshot.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_fewshot.py"),
        "--smoke",
        "--test-items",
        "2",
        "--pool-items",
        "40",
        "--json",
        str(out),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for mode in ("without", "with"):
        assert figures[mode]["items"] == 2
        assert 0.0 <= figures[mode]["accuracy"] <= 1.0
        assert figures[mode]["prompt_tokens_mean"] > 0 and figures[mode]["latency_ms_p50"] > 0
    assert figures["with"]["prompt_tokens_mean"] > figures["without"]["prompt_tokens_mean"]  # exemplars sent
    assert [row["exemplars"] for row in figures["search"]] == [1_000, 10_000]
