"""Calling the models: LiteLLM dispatch, the per-tier circuit breaker, and the embedded llama.cpp tiers."""
