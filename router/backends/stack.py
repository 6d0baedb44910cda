"""The one tier stack every caller uses: LiteLLM, the embedded-model gate on it, the circuit breaker on top.

A call goes breaker -> gate -> LiteLLM: an open circuit refuses it before anything else, an embedded tier's
call is pointed at its llama.cpp child's api_base, and LiteLLM makes it. The pipeline, the shadow sampler
and the judge all call `TierStack.backend`, so none of them can skip a layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from router.backends.breaker import BreakerBackend, State
from router.backends.embedded import EmbeddedTiers
from router.backends.litellm import Backend, LiteLLMBackend
from router.config import RouterConfig
from router.domain import Tier
from router.metrics import RouterMetrics


@dataclass(frozen=True)
class TierStack:
    """The layers of one process's model calls; call `backend`, the top."""

    litellm: LiteLLMBackend
    embedded: EmbeddedTiers
    breakers: BreakerBackend

    @property
    def backend(self) -> Backend:
        return self.breakers

    async def aclose(self) -> None:
        """Stop the embedded children, then flush LiteLLM's logging worker."""
        await self.embedded.stop()
        await self.litellm.aclose()


def build_tier_stack(
    config: RouterConfig,
    metrics: RouterMetrics,
    *,
    litellm: LiteLLMBackend | None = None,
    on_breaker_change: Callable[[Tier, State], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TierStack:
    """The stack for `config`'s tiers; its embedded children are made here, started by `embedded.start()`."""
    litellm = litellm if litellm is not None else LiteLLMBackend()
    embedded = EmbeddedTiers.from_config(config, metrics)
    gated = embedded.gate(litellm)
    breakers = BreakerBackend(
        gated, config.routing.breaker, metrics.registry, on_change=on_breaker_change, clock=clock
    )
    return TierStack(litellm, embedded, breakers)
