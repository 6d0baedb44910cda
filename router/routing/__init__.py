"""Choosing the tier: the pure policy, the live routing state, thresholds, target share and simulation."""

from router.routing.policy import decide
from router.routing.state import LiveState, RoutingState
from router.routing.target_share import TargetShare
from router.routing.thresholds import ResolvedThreshold

__all__ = ["LiveState", "ResolvedThreshold", "RoutingState", "TargetShare", "decide"]
