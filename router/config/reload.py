"""Live config reload: watch the config file (and SIGHUP), validate the whole new file, swap it in at once.

The file is polled every POLL_INTERVAL_S (mtime, size and, when those move, a sha256 of the content), which
also sees editors that replace the file and Kubernetes ConfigMap symlink swaps. A new file is loaded exactly
as at start-up (`ConfigSource.load`: the same file, the same command-line overrides), validated as a whole,
and only then installed, together with its target-share resolution, as one new snapshot of the live
routing state (router.routing.state): a request uses either the old config or the new one, never a mix.

Only `tiers` and `routing` (LIVE_SECTIONS) change live. Any other section that differs (server address,
scoring, models, log, ...) keeps its running value and one warning says it needs a restart; so does a tier
whose embedded model (EMBEDDED_KEYS: a llama.cpp child started with the server) changed.
An invalid file changes nothing: one ERROR line names the key and the problem, and
`rightsize_config_reloads_total{result="invalid"}` counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from router.config.settings import RouterConfig, load_config, with_server
from router.domain import TIERS, Tier
from router.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.5
# A file seen changing is re-read after this long and must read the same, so a half-written file is skipped.
SETTLE_S = 0.05
LIVE_SECTIONS = frozenset({"tiers", "routing"})
# A tier's keys that start a child process at start-up (router.backends.embedded): a change needs a restart.
EMBEDDED_KEYS = ("embedded", "embedded_options", "if_not_installed")
Result = Literal["applied", "unchanged", "invalid"]


@dataclass(frozen=True)
class ConfigSource:
    """Where the running config came from: the file, and the `rightsize serve` flags applied on top."""

    path: Path
    server_flags: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> RouterConfig:
        """Read and validate the file as at start-up; raises ConfigError naming the key."""
        return with_server(load_config(self.path), **dict(self.server_flags))


class LiveConfig(Protocol):
    """Where a valid reloaded config goes: the live routing state's writer (router.routing.TargetShare)."""

    @property
    def running(self) -> RouterConfig: ...

    async def apply(self, config: RouterConfig) -> str:
        """Install `config` with what it resolves to; returns a summary for the log line."""
        ...


class ReloadMetrics:
    """Reload attempts by result, and whether the file on disk is the config being served."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        self.reloads = Counter(
            "rightsize_config_reloads",
            "Config reloads by result (applied, unchanged, invalid)",
            ["result"],
            registry=registry,
        )
        self.valid = Gauge(
            "rightsize_config_valid", "1 when the last config file read was valid", registry=registry
        )
        self.last_applied = Gauge(
            "rightsize_config_last_applied_timestamp_seconds",
            "Unix time the served config was last installed",
            registry=registry,
        )
        self.valid.set(1)
        self.last_applied.set_to_current_time()


def restart_only_changes(running: RouterConfig, loaded: RouterConfig) -> list[str]:
    """Dotted keys outside LIVE_SECTIONS whose value differs: they take effect only after a restart."""
    changed: list[str] = []
    for section in type(running).model_fields:
        if section in LIVE_SECTIONS:
            continue
        old, new = getattr(running, section), getattr(loaded, section)
        if old != new:
            changed.extend(_differences(section, old, new))
    changed.extend(f"tiers.{tier}.embedded" for tier in _embedded_changes(running, loaded))
    return changed


def keep_running(running: RouterConfig, loaded: RouterConfig) -> RouterConfig:
    """`loaded` with every section outside LIVE_SECTIONS taken from `running`."""
    kept: dict[str, Any] = {
        section: getattr(running, section)
        for section in type(running).model_fields
        if section not in LIVE_SECTIONS
    }
    embedded = _embedded_changes(running, loaded)
    if embedded:
        tiers: dict[str, Any] = {
            tier: (running if tier in embedded else loaded).tiers.get(tier) for tier in TIERS
        }
        kept["tiers"] = loaded.tiers.model_copy(update=tiers)
    return loaded.model_copy(update=kept)


def _embedded_changes(running: RouterConfig, loaded: RouterConfig) -> list[Tier]:
    return [
        tier
        for tier in TIERS
        if any(
            getattr(running.tiers.get(tier), key, None) != getattr(loaded.tiers.get(tier), key, None)
            for key in EMBEDDED_KEYS
        )
    ]


def _differences(prefix: str, old: Any, new: Any) -> list[str]:
    fields = getattr(type(old), "model_fields", None)
    if fields is None or type(old) is not type(new):
        return [prefix]
    keys = [f"{prefix}.{name}" for name in fields if getattr(old, name) != getattr(new, name)]
    return keys or [prefix]


def _fingerprint(path: Path) -> tuple[int, int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    # The inode too: a symlink swap (a ConfigMap's `..data`) may point at a file of the same size and mtime.
    return stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigReloader:
    """Watches `source.path`; `request_reload()` (SIGHUP) forces a reload even when the file is unchanged.

    `poll_interval_s` and `settle_s` are arguments so a test can poll fast instead of waiting.
    """

    def __init__(
        self,
        source: ConfigSource,
        live: LiveConfig,
        registry: CollectorRegistry,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        settle_s: float = SETTLE_S,
    ):
        self.source = source
        self.live = live
        self.settle_s = settle_s
        self.metrics = ReloadMetrics(registry)
        self.poll_interval_s = poll_interval_s
        self.polls = 0  # looks at the file so far, for tests that wait on polls rather than on time
        self._fingerprint = _fingerprint(source.path)
        self._digest = _digest(source.path)
        self._task: asyncio.Task[None] | None = None
        self._forced = asyncio.Event()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Start watching (call on the event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="config-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def request_reload(self) -> None:
        """Reload at the next moment, even if the file looks unchanged (the SIGHUP handler)."""
        log.info("SIGHUP received: reloading %s", self.source.path)
        self._forced.set()

    async def reload(self, *, force: bool = False) -> Result:
        """Read the file; install it when valid and (unless `force`) changed since the last read."""
        async with self._lock:
            digest = _digest(self.source.path)
            if not force and digest == self._digest:
                self.metrics.reloads.labels("unchanged").inc()
                return "unchanged"
            self._digest = digest
            try:
                loaded = self.source.load()
            except ConfigError as exc:
                # One line, naming the file, the key and the problem; the running config stays.
                log.error("config reload rejected, still serving the previous config: %s", exc)
                self.metrics.reloads.labels("invalid").inc()
                self.metrics.valid.set(0)
                return "invalid"
            self.metrics.valid.set(1)
            return await self._install(loaded)

    async def _install(self, loaded: RouterConfig) -> Result:
        running = self.live.running
        for key in restart_only_changes(running, loaded):
            log.warning("config reload: %s changed; it takes effect only after a restart", key)
        config = keep_running(running, loaded)
        if config == running:
            self.metrics.reloads.labels("unchanged").inc()
            log.info("config reload: %s has no live change", self.source.path)
            return "unchanged"
        summary = await self.live.apply(config)
        self.metrics.reloads.labels("applied").inc()
        self.metrics.last_applied.set_to_current_time()
        log.info(
            "config reloaded from %s (%s, %d overrides)",
            self.source.path,
            summary,
            len(config.routing.overrides),
        )
        return "applied"

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._forced.wait(), self.poll_interval_s)
            forced = self._forced.is_set()
            self._forced.clear()
            try:
                if forced:
                    await self.reload(force=True)
                elif await self._changed():
                    await self.reload()
            except Exception:  # the watcher must outlive any surprise; the config being served is untouched
                log.exception("config reload failed unexpectedly; still serving the previous config")
            self.polls += 1

    async def _changed(self) -> bool:
        fingerprint = _fingerprint(self.source.path)
        if fingerprint == self._fingerprint:
            return False
        await asyncio.sleep(self.settle_s)
        settled = _fingerprint(self.source.path)
        if settled != fingerprint:
            return False  # still being written: look again at the next poll
        self._fingerprint = settled
        return _digest(self.source.path) != self._digest
