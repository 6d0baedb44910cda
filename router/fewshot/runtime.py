"""The serving side of few-shot: keep the exemplar store current, and pick a request's exemplars.

The store is (re)built off the event loop: at start, whenever the `few_shot` settings that shape it change
(a config reload: sources, min_quality, window, cap), when a curated file changes on disk or the classifier's
embedder changes, and every `refresh_s` when the log is a source. Exemplar embeddings are cached by prompt,
so a rebuild embeds only prompts it has not seen. Until the first build for the current settings finishes,
requests get no exemplars (never exemplars from the previous sources). `k`, `min_similarity` and
`max_tokens` apply per request and never rebuild anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from router.domain import Request
from router.fewshot.exemplars import Exemplar, ExemplarStore, Query, Selection
from router.fewshot.settings import OPT_OUT_KEY, OPT_OUT_VALUE, TASK_KEY, TENANT_KEY, FewShotSettings
from router.fewshot.sources import approved_pairs, deduplicated, read_curated
from router.requestlog import LogSettings, RequestLogStore, open_store
from router.scoring_queue import TextEmbedder
from router.structured import schema_name_of

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)
CHECK_S = 1.0  # how often the settings, files and embedder are checked for a change
EMBED_BATCH = 64  # prompts per embedding run while building, so request scoring interleaves
# From this many exemplars a search (~3 ms at 20k on 2 busy cores, ~30 ms at 100k) leaves the event loop.
OFF_LOOP_EXEMPLARS = 20_000


def opted_out(request: Request) -> bool:
    """True when the request's metadata says few_shot=off."""
    return request.metadata.get(OPT_OUT_KEY, "").strip().lower() == OPT_OUT_VALUE


class FewShotMetrics:
    """Exemplars loaded, and small-tier requests by few-shot outcome (injected, none, off)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        self.exemplars = Gauge(
            "rightsize_fewshot_exemplars", "Exemplars in the few-shot store", registry=registry
        )
        self.requests = Counter(
            "rightsize_fewshot_requests",
            "Small-tier requests by few-shot outcome",
            ["outcome"],
            registry=registry,
        )


class FewShot:
    """Builds the exemplar store from the live settings and selects exemplars for one request."""

    def __init__(
        self,
        settings: Callable[[], FewShotSettings | None],
        embedder: Callable[[], TextEmbedder | None],
        log_settings: LogSettings,
        metrics: FewShotMetrics | None = None,
        approve_escalations: Callable[[], bool] = lambda: False,  # routing.cascade.approve_escalations
    ) -> None:
        self.settings = settings  # read per request, so a reloaded config applies at once
        self.approve_escalations = approve_escalations
        self.embedder = embedder
        self.log_settings = log_settings
        self.metrics = metrics
        self.store: ExemplarStore | None = None
        self._built_for: tuple[Any, ...] | None = None
        self._built_at = 0.0
        self._failed: tuple[float, tuple[Any, ...]] | None = None  # (when, for which key)
        self._cache: dict[str, np.ndarray] = {}
        self._cache_owner: str | None = None
        self._log_store: RequestLogStore | None = None
        self._build: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._building = asyncio.Lock()  # one build at a time: builds share the embedding cache

    @property
    def slow(self) -> bool:
        """True when a search is slow enough to run off the event loop (see `aselect`)."""
        store = self.store
        return store is not None and len(store) >= OFF_LOOP_EXEMPLARS

    @property
    def ready(self) -> bool:
        """True when the store matches the current settings (requests may get exemplars)."""
        return self.store is not None and self._built_for == self._key()

    def start(self) -> None:
        """Watch settings and sources, building the store in the background (call on the event loop)."""
        self._watch = asyncio.get_running_loop().create_task(self._watch_loop(), name="fewshot-watch")

    async def stop(self) -> None:
        for task in (self._watch, self._build):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._log_store is not None:
            self._log_store.close()

    def select(self, request: Request, embedding: np.ndarray | None, prompt: str) -> Selection:
        """The exemplars for a small-tier call of `request` (whose scored text is `prompt`), or none."""
        settings = self.settings()
        if settings is None or not settings.enabled:
            return Selection()
        if opted_out(request):
            self._count("off")
            return Selection()
        store, built_for = self.store, self._built_for
        # Only the settings part of the key here (no file stat per request); the watcher sees file changes.
        if embedding is None or store is None or built_for is None or built_for[0] != _settings_key(settings):
            self._count("none")
            return Selection()
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        selection = store.search(Query(
            embedding=embedding, tenant=request.metadata.get(TENANT_KEY) or None, k=settings.k,
            min_similarity=settings.min_similarity, max_tokens=settings.max_tokens,
            exclude_prompts=frozenset({prompt.strip(), last_user.strip()}),
            exclude_request_id=request.request_id, task=request.metadata.get(TASK_KEY) or None,
            schema_name=schema_name_of(request.response_format),
        ))  # fmt: skip
        self._count("injected" if selection else "none")
        return selection

    async def aselect(self, request: Request, embedding: np.ndarray | None, prompt: str) -> Selection:
        """As select(), in a worker thread when the store is large (numpy releases the GIL meanwhile)."""
        if not self.slow:
            return self.select(request, embedding, prompt)
        return await asyncio.get_running_loop().run_in_executor(None, self.select, request, embedding, prompt)

    async def refresh(self) -> None:
        """Rebuild the store now for the current settings (embedding only prompts not seen before)."""
        settings = self.settings()
        if settings is None or not settings.enabled:
            return
        key = self._key(settings)
        loop = asyncio.get_running_loop()
        try:
            async with self._building:
                store = await loop.run_in_executor(None, self._build_store, settings)
        except Exception as exc:  # a bad file or a log outage keeps the last good store for its settings
            self._failed = (time.monotonic(), key)
            log.warning("few-shot: cannot build the exemplar store: %s", exc)
            return
        self._failed = None
        if key != self._key():
            return  # the settings changed while building: the watcher builds again
        self.store, self._built_for, self._built_at = store, key, time.monotonic()
        if self.metrics is not None:
            self.metrics.exemplars.set(len(store))
        log.info("few-shot: %d exemplars loaded from %s", len(store), ", ".join(settings.source))

    def _build_store(self, settings: FewShotSettings) -> ExemplarStore:
        embedder = self.embedder()
        if embedder is None:
            raise RuntimeError("the classifier exposes no embedder (few-shot needs classifier.Scorer)")
        exemplars = self._collect(settings)
        owner = _embedder_id(embedder)
        if owner != self._cache_owner:
            self._cache, self._cache_owner = {}, owner
        missing = [e.prompt for e in exemplars if _prompt_key(e.prompt) not in self._cache]
        missing = list(dict.fromkeys(missing))
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            for text, vector in zip(batch, embedder.embed(batch), strict=True):
                self._cache[_prompt_key(text)] = vector
        wanted = {_prompt_key(e.prompt) for e in exemplars}
        self._cache = {key: vector for key, vector in self._cache.items() if key in wanted}
        dim = next(iter(self._cache.values())).shape[0] if self._cache else 0
        matrix = (
            np.stack([self._cache[_prompt_key(e.prompt)] for e in exemplars])
            if exemplars
            else np.zeros((0, dim), dtype=np.float32)
        )
        return ExemplarStore.from_embedded(exemplars, matrix)

    def _collect(self, settings: FewShotSettings) -> list[Exemplar]:
        exemplars: list[Exemplar] = []
        for path in settings.files:
            exemplars += [e for e in read_curated(path) if e.quality >= settings.min_quality]
        if settings.uses_logs:
            if self._log_store is None:
                self._log_store = open_store(self.log_settings.url, timeout_ms=self.log_settings.timeout_ms)
            since = datetime.now(UTC) - timedelta(days=settings.log_window_days)
            approved = approved_pairs(
                self._log_store,
                since=since,
                min_quality=settings.min_quality,
                approve_escalations=self.approve_escalations(),
            )
            pairs = deduplicated(approved)
            logged = [pair.exemplar() for pair in pairs]  # oldest first
            room = max(settings.max_exemplars - len(exemplars), 0)
            exemplars += logged[len(logged) - room :] if room else []  # curated first, then the newest logged
        return exemplars[: settings.max_exemplars]

    def _key(self, settings: FewShotSettings | None = None) -> tuple[Any, ...]:
        """What the store's content depends on, besides the log's rows (those are refreshed on a timer)."""
        settings = settings or self.settings()
        if settings is None:
            return ()
        files = tuple((str(path), _fingerprint(path)) for path in settings.files)
        embedder = self.embedder()
        embedder_id = _embedder_id(embedder) if embedder is not None else None
        return (_settings_key(settings), files, embedder_id, self.approve_escalations())

    async def _watch_loop(self) -> None:
        while True:
            settings = self.settings()
            if settings is not None and settings.enabled and self._due(settings):
                self._build = asyncio.get_running_loop().create_task(self.refresh())
                try:
                    await self._build
                except Exception:  # the watcher outlives any surprise; requests just get no exemplars
                    log.exception("few-shot: refresh failed unexpectedly")
            await asyncio.sleep(CHECK_S)

    def _due(self, settings: FewShotSettings) -> bool:
        now, key = time.monotonic(), self._key(settings)
        if self._failed is not None and self._failed[1] == key:
            return now - self._failed[0] >= settings.refresh_s  # the same inputs failed: wait, then retry
        if self._built_for != key:
            return True
        return settings.uses_logs and now - self._built_at >= settings.refresh_s

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(outcome).inc()


def _settings_key(settings: FewShotSettings) -> tuple[Any, ...]:
    return (settings.source, settings.min_quality, settings.log_window_days, settings.max_exemplars)


def _prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _embedder_id(embedder: TextEmbedder) -> str:
    info = getattr(embedder, "info", None)
    return f"{getattr(info, 'id', type(embedder).__name__)}@{id(embedder)}"


def _fingerprint(path: Any) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def embedder_of(scorer: object) -> TextEmbedder | None:
    """The scorer's embedder, when it exposes one (classifier.scoring.Scorer does)."""
    embedder = getattr(scorer, "embedder", None)
    return embedder if callable(getattr(embedder, "embed", None)) else None
