"""Thresholds for a target large share."""

import numpy as np
import pytest

from classifier.calibration import suggested_thresholds, threshold_for_share


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


def test_bad_fraction_and_empty_input() -> None:
    with pytest.raises(ValueError, match="outside|in \\[0, 1\\]"):
        threshold_for_share(np.array([0.2]), 1.5)
    with pytest.raises(ValueError, match="no scores"):
        threshold_for_share(np.array([]), 0.3)


def test_suggested_thresholds_are_ordered() -> None:
    scores = np.random.default_rng(2).random(500)
    suggested = suggested_thresholds(scores)
    assert set(suggested) == {"0.1", "0.3", "0.5"}
    assert suggested["0.1"] > suggested["0.3"] > suggested["0.5"]
