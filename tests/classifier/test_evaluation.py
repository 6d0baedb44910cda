"""AUC / APGR / CPT against hand-computed values."""

import numpy as np
import pytest

from classifier.data import Example
from classifier.evaluation import evaluate, routing_curve


def examples(small_ok: list[int]) -> list[Example]:
    return [Example(text=str(i), small_ok=ok) for i, ok in enumerate(small_ok)]


def test_perfect_router_by_hand() -> None:
    # 4 prompts, 2 need large. Perfect order: both hard ones first.
    report = evaluate(np.array([0.9, 0.8, 0.2, 0.1]), examples([0, 0, 1, 1]))
    # quality at k=0..4: 0.5, 0.75, 1, 1, 1 -> PGR 0, .5, 1, 1, 1 -> trapezoids .0625 + .1875 + .25 + .25
    assert report.apgr == pytest.approx(0.75)
    assert report.auc == pytest.approx(1.0)
    assert report.cpt50 == pytest.approx(0.25)
    assert report.cpt80 == pytest.approx(0.25 + 0.3 * 0.25 / 0.5)


def test_worst_router_and_real_scores() -> None:
    rows = [
        Example(text="a", small_ok=1, small_score=1.0, large_score=1.0),
        Example(text="b", small_ok=0, small_score=0.0, large_score=1.0),
    ]
    report = evaluate(np.array([0.9, 0.1]), rows)  # sends the easy one large first
    assert report.quality_basis.startswith("small_score")
    assert report.apgr == pytest.approx(0.25)
    assert report.auc == pytest.approx(0.0)


def test_ties_are_split_evenly() -> None:
    curve = routing_curve(np.array([0.5, 0.5]), np.array([1.0, 0.0]), np.array([1.0, 1.0]))
    assert list(curve.large_share) == [0.0, 1.0]
    assert list(curve.pgr) == [0.0, 1.0]


def test_random_router_is_near_half() -> None:
    rng = np.random.default_rng(0)
    labels = list(rng.integers(0, 2, 4000))
    report = evaluate(rng.random(4000), examples(labels))
    assert abs(report.apgr - 0.5) < 0.03
    assert abs(report.auc - 0.5) < 0.03
