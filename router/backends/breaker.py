"""Circuit breaker per tier: after N consecutive failures a tier is skipped for T seconds, then probed.

States: closed (calls go through), open (calls fail at once with BackendError kind "circuit_open", so the
pipeline falls back without paying the tier's timeout), half-open (after `open_s`, one probe call at a
time goes through: success closes the circuit, failure opens it again). Failures that are the request's
own fault (bad_request) or known without a call (unconfigured) do not count. A 429 with Retry-After opens
the circuit at once for that long, so the provider's request to back off is respected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from router.backends.litellm import Backend, BackendCall
from router.config.settings import BreakerSettings
from router.domain import TIERS, Generation, GenerationDelta, Tier
from router.errors import BackendError

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "open": 1, "half_open": 2}
CLIENT_SLACK_S = 0.1  # a timeout this close to the client's deadline is the deadline's, not the tier's
MAX_RETRY_AFTER_S = 600.0  # a longer Retry-After is capped: the tier is probed again after this
NOT_COUNTED = frozenset({"bad_request", "unconfigured", "circuit_open"})


class Breaker:
    """One tier's circuit; `clock` is time.monotonic unless a test passes another."""

    def __init__(
        self,
        tier: Tier,
        settings: BreakerSettings,
        on_change: Callable[[Tier, State], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.tier = tier
        self.settings = settings
        self.on_change = on_change
        self.clock = clock
        self.state: State = "closed"
        self.failures = 0
        self.open_until = 0.0
        self.probing = False

    def allow(self) -> bool:
        """True when a call may go to the tier now (in half-open, only the one probe)."""
        if self.state == "open" and self.clock() >= self.open_until:
            self._set("half_open")
        if self.state == "closed":
            return True
        if self.state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def retry_in_s(self) -> float:
        """Seconds until the next probe may go (0 when not open)."""
        if self.state != "open":
            return 0.0
        return max(self.open_until - self.clock(), 0.0)

    def succeeded(self) -> None:
        self.failures = 0
        self.probing = False
        if self.state != "closed":
            self._set("closed")

    def failed(self, kind: str, retry_after_s: float | None = None) -> None:
        """Count a failed call; a provider's Retry-After opens the circuit at once, for that long."""
        self.probing = False
        if kind in NOT_COUNTED:
            return
        self.failures += 1
        if retry_after_s is not None and retry_after_s > 0:
            self._open(min(retry_after_s, MAX_RETRY_AFTER_S))
        elif self.state == "half_open" or self.failures >= self.settings.failures:
            self._open(self.settings.open_s)

    def _open(self, seconds: float) -> None:
        self.open_until = max(self.open_until, self.clock() + seconds)
        if self.state != "open":
            self._set("open")

    def _set(self, state: State) -> None:
        previous, self.state = self.state, state
        level = logging.WARNING if state == "open" else logging.INFO
        log.log(
            level,
            "%s tier circuit %s -> %s%s",
            self.tier,
            previous,
            state,
            f" for {self.retry_in_s():.1f} s after {self.failures} failures" if state == "open" else "",
        )
        if self.on_change is not None:
            self.on_change(self.tier, state)


class BreakerBackend:
    """A Backend that routes each tier's calls through its Breaker (the pipeline's seam stays the same)."""

    def __init__(
        self,
        backend: Backend,
        settings: BreakerSettings,
        registry: CollectorRegistry,
        on_change: Callable[[Tier, State], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.backend = backend
        self.enabled = settings.enabled
        self.on_change = on_change
        self.state_gauge = Gauge(
            "rightsize_breaker_state",
            "Tier circuit: 0 closed, 1 open, 2 half-open",
            ["tier"],
            registry=registry,
        )
        self.transitions = Counter(
            "rightsize_breaker_transitions",
            "Tier circuit state changes",
            ["tier", "state"],
            registry=registry,
        )
        self.breakers = {tier: Breaker(tier, settings, self._changed, clock) for tier in TIERS}
        for tier in TIERS:
            self.state_gauge.labels(tier).set(0)

    def __getattr__(self, name: str) -> object:
        return getattr(self.backend, name)  # e.g. LiteLLMBackend.ready, aclose

    async def complete(self, call: BackendCall) -> Generation:
        if not self.enabled:
            return await self.backend.complete(call)
        breaker = self._admit(call)
        try:
            generation = await self.backend.complete(call)
        except BackendError as error:
            _judge(breaker, call, error)
            raise
        except BaseException:
            breaker.probing = False  # cancelled: no verdict on the tier
            raise
        breaker.succeeded()
        return generation

    async def stream(self, call: BackendCall) -> AsyncGenerator[GenerationDelta, None]:
        """The tier's stream; its first delta, or its failure before one, decides the call's outcome."""
        if not self.enabled:
            async for delta in self.backend.stream(call):
                yield delta
            return
        breaker = self._admit(call)
        first = True
        try:
            async for delta in self.backend.stream(call):
                if first:
                    breaker.succeeded()
                    first = False
                yield delta
        except BackendError as error:
            _judge(breaker, call, error)
            raise
        finally:
            if first:
                breaker.probing = False

    def _admit(self, call: BackendCall) -> Breaker:
        breaker = self.breakers[call.tier]
        if not breaker.allow():
            raise BackendError(
                call.tier,
                call.settings.model,
                "circuit_open",
                f"circuit open after repeated failures; next probe in {breaker.retry_in_s():.1f} s",
            )
        return breaker

    def _changed(self, tier: Tier, state: State) -> None:
        self.state_gauge.labels(tier).set(STATE_VALUES[state])
        self.transitions.labels(tier, state).inc()
        if self.on_change is not None:
            self.on_change(tier, state)


def _judge(breaker: Breaker, call: BackendCall, error: BackendError) -> None:
    """Count the failure, unless it is a timeout caused by the client's own (short) deadline."""
    client_bound = call.deadline is not None and call.deadline - time.monotonic() < CLIENT_SLACK_S
    if error.kind == "timeout" and client_bound:
        breaker.probing = False
        return
    breaker.failed(error.kind, error.retry_after_s)
