"""`routing.target_large_fraction` resolved to a threshold, from logged scores or the model's manifest.

The threshold is the one that would have sent that share of the recent logged traffic to the large tier
(`classifier.calibration.threshold_for_share` on the logged scores of the served classifier version, within
`routing.target_window`). A social turn (rule "social") counts in that traffic as a request that goes small
whatever the threshold, so the share is of all of it, as an operator watching the large share sees it;
other rules that bypass the threshold (force_tier, fixed-tier overrides) count by their score. With fewer
than `target_window.min_requests` such requests it comes from the model manifest's `suggested_thresholds`
({"0.1": t, "0.3": t, "0.5": t}), interpolated linearly in the share between those points and the anchors
(share 0 -> threshold 1, share 1 -> threshold 0). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from router.config import TargetWindow
from router.domain import SOCIAL_RULE

if TYPE_CHECKING:
    from router.requestlog import LogRecord


@dataclass(frozen=True)
class ResolvedThreshold:
    """`routing.target_large_fraction` resolved: threshold in [0, 1], and what it was computed from.

    `requests` is the number of logged scores used (0 when `basis` is the manifest).
    """

    fraction: float
    threshold: float
    requests: int
    basis: str  # "logs" or "manifest"
    classifier_version: str = ""

    @property
    def reason(self) -> str:
        """`Decision.reason`, e.g. `target large fraction 0.3 -> threshold 0.61 (1234 logged requests)`."""
        if self.basis == "logs":
            source = f"{self.requests} logged requests"
        else:
            source = f"model's suggested thresholds; {self.requests} logged requests"
        return f"target large fraction {self.fraction:g} -> threshold {self.threshold:.4g} ({source})"


def threshold_from_suggested(fraction: float, suggested: Mapping[str, float]) -> float | None:
    """Interpolate the manifest's {"share": threshold} at `fraction` (None when there are none)."""
    points: dict[float, float] = {}
    for share, threshold in suggested.items():
        try:
            x = float(share)
        except ValueError:
            continue
        if 0.0 < x < 1.0 and math.isfinite(threshold):
            points[x] = float(threshold)
    if not points:
        return None
    xs = [0.0, *sorted(points), 1.0]
    ys = [1.0, *(points[x] for x in sorted(points)), 0.0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if x0 <= fraction <= x1:
            return y0 if x1 == x0 else y0 + (fraction - x0) * (y1 - y0) / (x1 - x0)
    return ys[-1]


def resolve(
    fraction: float,
    scores: Iterable[float | None],
    window: TargetWindow,
    suggested: Mapping[str, float],
    classifier_version: str = "",
) -> ResolvedThreshold | None:
    """The threshold for `fraction` from logged `scores` (None: a social turn, small whatever the threshold),
    else the manifest's; None when neither exists."""
    import numpy as np

    from classifier.calibration import threshold_for_share

    logged = list(scores)
    values = np.array([score for score in logged if score is not None], dtype=np.float64)
    if len(logged) >= window.min_requests and len(values):
        threshold = threshold_for_share(values, fraction, always_small=len(logged) - len(values))
        return ResolvedThreshold(fraction, threshold, len(logged), "logs", classifier_version)
    fallback = threshold_from_suggested(fraction, suggested)
    if fallback is None:
        return None
    return ResolvedThreshold(fraction, round(fallback, 6), len(logged), "manifest", classifier_version)


def recent_scores(
    records: Iterable[LogRecord],
    window: TargetWindow,
    *,
    classifier_version: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> list[float | None]:
    """Scores of the most recent `window.max_requests` records (oldest first in, newest kept), None for a
    social turn's (it went small whatever its score).

    Only records with a score, scored by `classifier_version` (any when None) and carrying every
    `metadata` pair count.
    """
    kept: deque[float | None] = deque(maxlen=window.max_requests)
    for record in records:
        if record.score is None:
            continue
        if classifier_version is not None and record.classifier_version != classifier_version:
            continue
        if metadata and any(record.metadata.get(key) != value for key, value in metadata.items()):
            continue
        kept.append(None if record.rule == SOCIAL_RULE else float(record.score))
    return list(kept)


def window_start(window: TargetWindow, now: datetime | None = None) -> datetime:
    """The oldest log time a resolution reads (UTC)."""
    return (now or datetime.now(UTC)) - timedelta(hours=window.hours)
