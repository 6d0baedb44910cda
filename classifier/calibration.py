"""Probability calibration (Platt) and thresholds for a target share of large-model calls."""

from __future__ import annotations

import numpy as np

# The smallest Platt slope kept: calibration may flatten the head's ranking, never reverse it.
MIN_PLATT_SLOPE = 1e-3
# ... nor flatten it past reading: the slope is at least this over the decisions' standard deviation, so the
# served logits keep a spread of 0.1. At slope 1e-3 a head's 99 held-out scores spanned 1e-4 and `score`'s
# six decimals tied a third of them (arena_bench_v1, benchmarks/threefold_cli.py): ranking lost to rounding.
MIN_LOGIT_SPREAD = 0.1


def fit_platt(decision: np.ndarray, need_large: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(a, b) such that sigmoid(a * decision + b) is a calibrated P(need large); fitted on held-out values.

    `a` is at least MIN_PLATT_SLOPE, and at least MIN_LOGIT_SPREAD / (sd of `decision`). On a few hundred
    noisy labels the held-out decisions can rank slightly backwards; an unconstrained fit then returns a < 0,
    and folding it into the head turned the head's ranking upside down (a 150-prompt retrain on mbpp went from
    APGR 0.57 to 0.43). With no usable evidence in the held-out decisions, the honest calibration is the base
    rate, keeping the head's order with a small spread (logit sd MIN_LOGIT_SPREAD, so the order survives
    float32 and rounding).
    """
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=1000)
    model.fit(decision.reshape(-1, 1), need_large, sample_weight=weights)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    centre = float(np.average(decision, weights=weights))
    spread = float(np.sqrt(np.average((decision - centre) ** 2, weights=weights)))
    floor = max(MIN_PLATT_SLOPE, MIN_LOGIT_SPREAD / spread) if spread > 0 else MIN_PLATT_SLOPE
    if a >= floor:
        return a, b
    rate = float(np.clip(np.average(need_large, weights=weights), 1e-6, 1 - 1e-6))
    return floor, float(np.log(rate / (1 - rate))) - floor * centre


def threshold_for_share(scores: np.ndarray, fraction: float, always_small: int = 0) -> float:
    """A threshold in [0, 1] that sends `fraction` of these scores (score >= threshold) to the large tier.

    `always_small` more requests count in the total but go small whatever the threshold (a rule decided
    them), so the share is of `len(scores) + always_small`. Ties, or too few scores above the others, can
    make the exact share unreachable; the threshold then lands on the nearest achievable share.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"target large fraction must be in [0, 1], got {fraction}")
    if always_small < 0:
        raise ValueError(f"always_small must be >= 0, got {always_small}")
    if len(scores) == 0:
        raise ValueError("no scores to calibrate on")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    k = int(round(fraction * (len(ordered) + always_small)))
    if k <= 0:
        return float(min(1.0, np.nextafter(ordered[0], np.inf)))
    if k >= len(ordered):
        return float(ordered[-1])
    high, low = ordered[k - 1], ordered[k]
    return float((high + low) / 2.0) if high > low else float(high)


def suggested_thresholds(
    scores: np.ndarray, fractions: tuple[float, ...] = (0.1, 0.3, 0.5)
) -> dict[str, float]:
    """{"0.1": t, ...}: thresholds that send each share of `scores` to the large tier."""
    return {f"{fraction:g}": round(threshold_for_share(scores, fraction), 6) for fraction in fractions}
