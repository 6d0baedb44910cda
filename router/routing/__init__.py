"""Choosing the tier: the pure policy, the target-share threshold, and what-if simulation."""

from router.routing.policy import decide
from router.routing.target_share import ResolvedThreshold, TargetShare

__all__ = ["ResolvedThreshold", "TargetShare", "decide"]
