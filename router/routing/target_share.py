"""`routing.target_large_fraction`: keep its threshold resolved (router.routing.thresholds) from the log.

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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from router.config import RouterConfig, RoutingSettings
from router.routing.state import LiveState
from router.routing.thresholds import ResolvedThreshold, resolve, window_start

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from router.requestlog import RequestLogStore

log = logging.getLogger(__name__)
# How often the background task checks whether the classifier or the target settings changed, in s.
CHECK_INTERVAL_S = 1.0
# A reload waits at most this long for the log before it falls back to the manifest's thresholds, in s.
RESOLVE_TIMEOUT_S = 1.0


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
    """Keeps the live state's `target` resolved for its `config.routing.target_large_fraction`.

    `check_interval_s` and `clock` (seconds, monotonic) are arguments so a test can drive the schedule.
    """

    def __init__(
        self,
        live: LiveState,
        registry: CollectorRegistry,
        *,
        check_interval_s: float = CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.live = live
        self.metrics = TargetMetrics(registry)
        self.check_interval_s = check_interval_s
        self.clock = clock
        self._store: RequestLogStore | None = None
        self._store_url: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._resolved_at = 0.0
        self._key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> RouterConfig:
        """The config being served."""
        return self.live.current.config

    async def start(self) -> None:
        """Resolve once (bounded by RESOLVE_TIMEOUT_S), then keep it fresh in a background task."""
        config = self.live.current.config
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
        """Install `config` and its resolution together, in one new snapshot.

        `fresh=False`: `resolved` is the current resolution, reused; the schedule keeps its time.
        """
        self.live.install(config=config, target=resolved)
        self._key = self._inputs(config)
        if fresh:
            self._resolved_at = self.clock()
        self.metrics.observe(resolved)

    async def apply(self, config: RouterConfig) -> str:
        """Install a reloaded `config`, resolving its target when its inputs changed; returns a summary."""
        fresh = not self.is_current(config)  # e.g. only an override changed: keep the target
        resolved = await self.resolve_for(config) if fresh else self.live.current.target
        self.install(config, resolved, fresh=fresh)
        return resolved.reason if resolved is not None else f"threshold {config.routing.threshold:g}"

    def is_current(self, config: RouterConfig) -> bool:
        """True when the installed target was resolved for `config`'s target settings and classifier."""
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
        scores: list[float | None] = []
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
        scorer = self.live.current.scorer
        manifest = getattr(scorer, "manifest", None)
        return scorer.version, dict(getattr(manifest, "suggested_thresholds", None) or {})

    def _inputs(self, config: RouterConfig) -> tuple[Any, ...]:
        routing: RoutingSettings = config.routing
        return (routing.target_large_fraction, routing.target_window, self.live.current.scorer.version)

    async def check(self) -> bool:
        """One look at the schedule: re-resolve when the inputs changed or the time is due; True if it did."""
        config = self.live.current.config
        if config.routing.target_large_fraction is None:
            return False
        stale = self._inputs(config) != self._key
        due = self.clock() - self._resolved_at >= config.routing.recalibrate_every_s
        if not (stale or due):
            return False
        resolved = await self.resolve_for(config)
        if self.live.current.config is not config:
            return False  # a reload meanwhile installed its own resolution
        previous = self.live.current.target
        self.install(config, resolved)
        if resolved is not None and (previous is None or previous.threshold != resolved.threshold):
            log.info("%s", resolved.reason)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval_s)
            await self.check()
