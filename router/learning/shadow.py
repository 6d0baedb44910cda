"""Shadow sampling: a share of small-tier answers is also asked of the large tier, in the background.

The client never waits for, nor fails because of, a shadow call: it starts as a separate task once the
client's answer is ready, at most `learning.shadow_max_inflight` run at once (a sample beyond that is
skipped and counted, never queued), and its failures are only counted. Both answers go to the log's
`shadow_answers` table for `rightsize label`, masked by `log.redact` with the writer's own redactor, as the
request's record is. They are best-effort: a shadow pair in flight at shutdown or while the log store is
down is lost (counted), unlike the request's own log record.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from router.backends.litellm import Backend, BackendCall
from router.config import RouterConfig
from router.domain import Completion, Request
from router.errors import BackendError
from router.redact import redacted
from router.requestlog import RequestLogStore, RequestLogWriter, ShadowAnswer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)
# How long a shadow pair waits for its request's own record to reach the store.
WAIT_LOGGED_S = 10.0


class ShadowMetrics:
    """`rightsize_shadow_calls_total{outcome}`: ok, error (large tier failed), skipped (too many in flight),
    lost (not stored)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter

        self.calls = Counter(
            "rightsize_shadow_calls",
            "Shadow calls to the large tier by outcome",
            ["outcome"],
            registry=registry,
        )

    def count(self, outcome: str) -> None:
        self.calls.labels(outcome).inc()


class ShadowSampler:
    """Starts background large-tier calls for a `rate` share of small-tier answers."""

    def __init__(
        self,
        config: Callable[[], RouterConfig],
        backend: Backend,
        writer: RequestLogWriter,
        store: RequestLogStore,
        metrics: ShadowMetrics,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config  # read per sample, so a reloaded `learning.shadow_rate` applies at once
        self.backend = backend
        self.writer = writer
        self.store = store
        self.metrics = metrics
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    def wants(self, completion: Completion) -> bool:
        """Draw whether this answer is shadowed (only small-tier answers without fallback ever are)."""
        learning = self.config().learning
        if completion.decision.tier != "small" or completion.fallback or learning.shadow_rate <= 0:
            return False
        return self.rng.random() < learning.shadow_rate

    def start(self, request: Request, completion: Completion, small_ms: float) -> bool:
        """Start the shadow call in the background; False (and counted) when too many already run."""
        if len(self._tasks) >= self.config().learning.shadow_max_inflight:
            self.metrics.count("skipped")
            return False
        task = asyncio.get_running_loop().create_task(self._shadow(request, completion, small_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def aclose(self, timeout_s: float) -> None:
        """Give running shadow calls `timeout_s` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
            self.metrics.count("lost")
        await asyncio.gather(*pending, return_exceptions=True)

    async def _shadow(self, request: Request, completion: Completion, small_ms: float) -> None:
        await asyncio.sleep(0)  # let the servicer hand the client its answer first
        tier = self.config().tiers.large
        started = time.perf_counter()
        large: ShadowAnswer
        try:
            generation = await self.backend.complete(
                BackendCall("large", tier, request.messages, request.params)
            )
        except BackendError as exc:
            self.metrics.count("error")
            log.info("shadow call for request %s failed: %s", request.request_id, exc)
            large = ShadowAnswer(
                request.request_id, "large", tier.model, datetime.now(UTC), error=str(exc),
                total_ms=(time.perf_counter() - started) * 1000,
            )  # fmt: skip
        else:
            self.metrics.count("ok")
            large = ShadowAnswer(
                request.request_id, "large", generation.model, datetime.now(UTC), response=generation.text,
                prompt_tokens=generation.usage.prompt_tokens,
                completion_tokens=generation.usage.completion_tokens, cost_usd=generation.cost_usd,
                total_ms=(time.perf_counter() - started) * 1000,
            )  # fmt: skip
        small = ShadowAnswer(
            request.request_id, "small", completion.model, datetime.now(UTC), response=completion.text,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens, cost_usd=completion.cost_usd,
            total_ms=small_ms,
        )  # fmt: skip
        await asyncio.get_running_loop().run_in_executor(None, self._store, small, large)

    def _store(self, *answers: ShadowAnswer) -> None:
        request_id = answers[0].request_id
        try:
            if not self.writer.wait_logged(request_id, timeout=WAIT_LOGGED_S):
                raise TimeoutError(f"its record was not stored within {WAIT_LOGGED_S:g} s")
            for answer in answers:
                if not self.store.add_answer(redacted(answer, self.writer.redactor)):
                    raise LookupError("its record is not in the store (spilled?)")
        except Exception as exc:  # best-effort data: count and say so, never propagate into the loop
            self.metrics.count("lost")
            log.warning("shadow answers of request %s not stored: %s", request_id, exc)
