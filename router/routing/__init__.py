"""Choosing the tier: the pure policy, the target-share threshold, and what-if simulation."""
