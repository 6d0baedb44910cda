"""`routing.target_large_fraction`: resolve a target large-tier share to a threshold, from logged scores.

The threshold is the one that would have sent that share of the recent logged traffic to the large tier
(`classifier.calibration.threshold_for_share` on the logged scores of the served classifier version, within
`routing.target_window`). With fewer than `target_window.min_requests` such scores it comes from the model
manifest's `suggested_thresholds` ({"0.1": t, "0.3": t, "0.5": t}), interpolated linearly in the share
between those points and the anchors (share 0 -> threshold 1, share 1 -> threshold 0).

`TargetShare` recomputes it in the background (never on the request path): every `recalibrate_every_s`,
and at once when the classifier version or the target settings change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from router.config import RouterConfig, RoutingSettings, TargetWindow

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from router.pipeline import Pipeline
    from router.requestlog import LogRecord, RequestLogStore

log = logging.getLogger(__name__)
# How often the background task checks whether the classifier or the target settings changed, in s.
CHECK_INTERVAL_S = 1.0
# A reload waits at most this long for the log before it falls back to the manifest's thresholds, in s.
RESOLVE_TIMEOUT_S = 1.0


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
    scores: Iterable[float],
    window: TargetWindow,
    suggested: Mapping[str, float],
    classifier_version: str = "",
) -> ResolvedThreshold | None:
    """The threshold for `fraction` from logged `scores`, else the manifest's; None when neither exists."""
    import numpy as np

    from classifier.calibration import threshold_for_share

    values = np.fromiter(scores, dtype=np.float64)
    if len(values) >= window.min_requests:
        threshold = threshold_for_share(values, fraction)
        return ResolvedThreshold(fraction, threshold, len(values), "logs", classifier_version)
    fallback = threshold_from_suggested(fraction, suggested)
    if fallback is None:
        return None
    return ResolvedThreshold(fraction, round(fallback, 6), len(values), "manifest", classifier_version)


def recent_scores(
    records: Iterable[LogRecord],
    window: TargetWindow,
    *,
    classifier_version: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> list[float]:
    """Scores of the most recent `window.max_requests` records (oldest first in, newest kept).

    Only records with a score, scored by `classifier_version` (any when None) and carrying every
    `metadata` pair count.
    """
    kept: deque[float] = deque(maxlen=window.max_requests)
    for record in records:
        if record.score is None:
            continue
        if classifier_version is not None and record.classifier_version != classifier_version:
            continue
        if metadata and any(record.metadata.get(key) != value for key, value in metadata.items()):
            continue
        kept.append(float(record.score))
    return list(kept)


def window_start(window: TargetWindow, now: datetime | None = None) -> datetime:
    """The oldest log time a resolution reads (UTC)."""
    return (now or datetime.now(UTC)) - timedelta(hours=window.hours)


class TargetMetrics:
    """The resolved threshold as gauges, and resolutions by outcome."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        self.threshold = Gauge(
            "rightsize_target_threshold",
            "Threshold resolved from routing.target_large_fraction (NaN: none)",
            registry=registry,
        )
        self.fraction = Gauge(
            "rightsize_target_large_fraction", "The configured target large share", registry=registry
        )
        self.requests = Gauge(
            "rightsize_target_threshold_requests",
            "Logged requests the resolved threshold was computed on (0: manifest)",
            registry=registry,
        )
        self.resolutions = Counter(
            "rightsize_target_resolutions",
            "Target-share resolutions by basis (logs, manifest, none, error)",
            ["result"],
            registry=registry,
        )
        self.threshold.set(math.nan)

    def observe(self, resolved: ResolvedThreshold | None) -> None:
        self.threshold.set(math.nan if resolved is None else resolved.threshold)
        self.fraction.set(math.nan if resolved is None else resolved.fraction)
        self.requests.set(0 if resolved is None else resolved.requests)


class TargetShare:
    """Keeps `pipeline.target` resolved for `pipeline.config.routing.target_large_fraction`."""

    def __init__(self, pipeline: Pipeline, registry: CollectorRegistry):
        self.pipeline = pipeline
        self.metrics = TargetMetrics(registry)
        self._store: RequestLogStore | None = None
        self._store_url: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._resolved_at = 0.0
        self._key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    async def start(self) -> None:
        """Resolve once (bounded by RESOLVE_TIMEOUT_S), then keep it fresh in a background task."""
        config = self.pipeline.config
        self.install(config, await self.resolve_for(config))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="target-share")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    def install(
        self, config: RouterConfig, resolved: ResolvedThreshold | None, *, fresh: bool = True
    ) -> None:
        """Swap `pipeline.config` and `pipeline.target` together (on the event loop, so atomically).

        `fresh=False`: `resolved` is the current resolution, reused; the schedule keeps its time.
        """
        self.pipeline.config = config
        self.pipeline.target = resolved
        self._key = self._inputs(config)
        if fresh:
            self._resolved_at = time.monotonic()
        self.metrics.observe(resolved)

    def is_current(self, config: RouterConfig) -> bool:
        """True when `pipeline.target` was resolved for `config`'s target settings and classifier."""
        return self._inputs(config) == self._key

    async def resolve_for(self, config: RouterConfig) -> ResolvedThreshold | None:
        """The resolution `config` needs (None without a target), read off the event loop."""
        routing = config.routing
        if routing.target_large_fraction is None:
            return None
        version, suggested = self._classifier()
        worker = asyncio.create_task(asyncio.to_thread(self._resolve_from_log, config, version, suggested))
        try:
            return await asyncio.wait_for(asyncio.shield(worker), RESOLVE_TIMEOUT_S)
        except TimeoutError:
            log.warning("target share: the request log is slow; using the model's suggested thresholds")
            self.metrics.resolutions.labels("error").inc()
            return resolve(routing.target_large_fraction, (), routing.target_window, suggested, version)

    def _resolve_from_log(
        self, config: RouterConfig, version: str, suggested: Mapping[str, float]
    ) -> ResolvedThreshold | None:
        routing = config.routing
        assert routing.target_large_fraction is not None
        scores: list[float] = []
        try:
            with self._lock:  # a reload and the schedule may both be reading
                store = self._open(config)
                if store is not None:
                    window = routing.target_window
                    scores = store.recent_scores(
                        window.max_requests, since=window_start(window), classifier_version=version or None
                    )
        except Exception as exc:  # a log outage must not stop routing: fall back, say so once per attempt
            log.warning(
                "target share: cannot read the request log (%s); using the model's suggested thresholds",
                " ".join(str(exc).split())[:200],
            )
            self.metrics.resolutions.labels("error").inc()
        resolved = resolve(routing.target_large_fraction, scores, routing.target_window, suggested, version)
        self.metrics.resolutions.labels(resolved.basis if resolved else "none").inc()
        if resolved is None:
            log.warning(
                "target share: no logged scores and no suggested thresholds in the model; "
                "routing.threshold %g applies",
                routing.threshold,
            )
        return resolved

    def _open(self, config: RouterConfig) -> RequestLogStore | None:
        from router.requestlog import open_store, parse_url

        settings = config.log
        url = parse_url(settings.url)
        if url.engine == "sqlite" and not url.path.is_file():
            return None  # nothing logged yet; reading must not create the log
        if settings.url != self._store_url:
            if self._store is not None:
                self._store.close()
            self._store = open_store(settings.url, timeout_ms=settings.timeout_ms)
            self._store_url = settings.url
        return self._store

    def _classifier(self) -> tuple[str, Mapping[str, float]]:
        scorer = self.pipeline.scoring.scorer
        manifest = getattr(scorer, "manifest", None)
        return scorer.version, dict(getattr(manifest, "suggested_thresholds", None) or {})

    def _inputs(self, config: RouterConfig) -> tuple[Any, ...]:
        routing: RoutingSettings = config.routing
        return (routing.target_large_fraction, routing.target_window, self.pipeline.scoring.scorer.version)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            config = self.pipeline.config
            if config.routing.target_large_fraction is None:
                continue
            stale = self._inputs(config) != self._key
            due = time.monotonic() - self._resolved_at >= config.routing.recalibrate_every_s
            if not (stale or due):
                continue
            resolved = await self.resolve_for(config)
            if self.pipeline.config is config:  # a reload meanwhile installed its own resolution
                previous = self.pipeline.target
                self.install(config, resolved)
                if resolved is not None and (previous is None or previous.threshold != resolved.threshold):
                    log.info("%s", resolved.reason)
