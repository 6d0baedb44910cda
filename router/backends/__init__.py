"""Calling the models: LiteLLM dispatch, the per-tier circuit breaker, and the embedded llama.cpp tiers."""

from router.backends.breaker import BreakerBackend
from router.backends.embedded import EmbeddedTiers
from router.backends.litellm import Backend, BackendCall, LiteLLMBackend

__all__ = ["Backend", "BackendCall", "BreakerBackend", "EmbeddedTiers", "LiteLLMBackend"]
