"""Calling the models: LiteLLM dispatch, the per-tier circuit breaker, the embedded tiers, and their stack."""

from router.backends.breaker import BreakerBackend
from router.backends.embedded import EmbeddedTiers
from router.backends.litellm import Backend, BackendCall, LiteLLMBackend
from router.backends.stack import TierStack, build_tier_stack

__all__ = [
    "Backend",
    "BackendCall",
    "BreakerBackend",
    "EmbeddedTiers",
    "LiteLLMBackend",
    "TierStack",
    "build_tier_stack",
]
