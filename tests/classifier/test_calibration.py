"""Platt calibration, and thresholds for a target large share."""

import numpy as np
import pytest

from classifier.calibration import (
    MIN_LOGIT_SPREAD,
    MIN_PLATT_SLOPE,
    fit_platt,
    suggested_thresholds,
    threshold_for_share,
)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 0.77, 1.0])
def test_threshold_hits_the_target_share(fraction: float) -> None:
    scores = np.random.default_rng(1).random(1000)
    threshold = threshold_for_share(scores, fraction)
    assert 0.0 <= threshold <= 1.0
    assert abs(float((scores >= threshold).mean()) - fraction) <= 0.001


def test_ties_land_on_an_achievable_share() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    threshold = threshold_for_share(scores, 0.4)
    assert float((scores >= threshold).mean()) in (0.2, 0.8)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 0.75])
def test_requests_that_always_go_small_count_in_the_share(fraction: float) -> None:
    scores = np.random.default_rng(3).random(750)  # and 250 more that a rule sends small
    threshold = threshold_for_share(scores, fraction, always_small=250)
    assert abs(float((scores >= threshold).sum()) / 1000 - fraction) <= 0.001


def test_a_share_the_scored_requests_cannot_fill_sends_all_of_them_large() -> None:
    scores = np.array([0.2, 0.6])
    assert threshold_for_share(scores, 0.9, always_small=2) == 0.2  # 2 of 4 is the most reachable


def test_bad_fraction_and_empty_input() -> None:
    with pytest.raises(ValueError, match="outside|in \\[0, 1\\]"):
        threshold_for_share(np.array([0.2]), 1.5)
    with pytest.raises(ValueError, match="no scores"):
        threshold_for_share(np.array([]), 0.3)
    with pytest.raises(ValueError, match="always_small"):
        threshold_for_share(np.array([0.2]), 0.3, always_small=-1)


def test_suggested_thresholds_are_ordered() -> None:
    scores = np.random.default_rng(2).random(500)
    suggested = suggested_thresholds(scores)
    assert set(suggested) == {"0.1", "0.3", "0.5"}
    assert suggested["0.1"] > suggested["0.3"] > suggested["0.5"]


def test_platt_recovers_a_positive_slope() -> None:
    rng = np.random.default_rng(0)
    decision = rng.normal(size=2000)
    labels = (rng.random(2000) < 1 / (1 + np.exp(-(2.0 * decision - 0.5)))).astype(float)
    a, b = fit_platt(decision, labels, np.ones(2000))
    assert 1.7 < a < 2.3 and -0.8 < b < -0.2


def test_platt_never_reverses_the_ranking() -> None:
    """Held-out decisions that rank backwards (noise on a few labels) give the base rate, not an inversion."""
    rng = np.random.default_rng(1)
    decision = rng.normal(size=300)
    labels = (rng.random(300) < 1 / (1 + np.exp(1.5 * decision))).astype(float)  # anti-correlated
    weights = np.ones(300)
    a, b = fit_platt(decision, labels, weights)
    assert a == pytest.approx(max(MIN_PLATT_SLOPE, MIN_LOGIT_SPREAD / decision.std()))
    probability = 1 / (1 + np.exp(-(a * decision + b)))
    assert np.all(np.diff(probability[np.argsort(decision)]) >= 0)  # the head's order is kept
    assert abs(float(probability.mean()) - float(labels.mean())) < 0.01  # calibrated to the base rate
    # ... and still readable: six decimals (what `rightsize score` writes) keep every score apart.
    assert len(set(np.round(probability, 6))) == len(decision)
