"""The routing policy: score + request + config -> Decision. Pure: no I/O, no clock, no randomness.

Rules, first match wins:
1. `force_tier` on the request ("forced by request");
2. `routing.overrides[i]` whose conditions all match (metadata, tool use, response_format type), when it
   fixes a tier;
3. a social turn (`routing.social_turns: small`): the last user message only greets, thanks or says
   goodbye (classifier.social), with no tools and plain text output: the small tier;
4. the first matching override's threshold;
5. the global threshold: `routing.threshold`, or the threshold resolved for `routing.target_large_fraction`
   (passed in as `target`, see router.routing.thresholds).
With a threshold, the large tier is chosen when score >= threshold.

In cascade mode (`routing.mode`, or the matching override's `mode`) a threshold rule sends the prompt to
the small tier first unless its score reaches `routing.cascade.direct_large`; `Decision.threshold` stays
the routing threshold, so logs show what plain routing would have chosen. A forced or fixed tier is route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier.social import is_social_turn
from router.config import Override, RouterConfig
from router.domain import SOCIAL_RULE, TIERS, Decision, Request, Tier

if TYPE_CHECKING:
    from router.routing.thresholds import ResolvedThreshold


def decide(
    score: float,
    request: Request,
    config: RouterConfig,
    *,
    classifier_version: str = "",
    target: ResolvedThreshold | None = None,
) -> Decision:
    """Pick the tier for `request` given its classifier score in [0, 1].

    `target` is the resolution of `config.routing.target_large_fraction` (ignored when that is unset).

    `request.force_tier` must already be "" or a valid tier (the pipeline validates requests).
    `Decision.threshold` is the threshold that applies to this request even when a rule forced the tier,
    so that logs show what the score alone would have chosen.
    """
    index, override = _first_override(config.routing.overrides, request)
    threshold = override.threshold if override is not None and override.threshold is not None else None
    global_rule, global_threshold, global_reason = _global_threshold(config, target)
    if threshold is None:
        threshold = global_threshold

    tier: Tier
    mode = override.mode_for(config.routing.mode) if override is not None else config.routing.mode
    if request.force_tier:
        tier = _as_tier(request.force_tier)
        rule, reason = "forced", "forced by request"
    elif override is not None:
        rule = f"override[{index}]"
        matched = override.describe()
        if override.tier is not None:
            tier = override.tier
            reason = f"{rule} {matched} tier={tier}"
        elif _social(request, config):
            tier, rule, reason = "small", SOCIAL_RULE, _SOCIAL_REASON
        else:
            tier = _by_threshold(score, threshold)
            reason = f"{rule} {matched} threshold={_number(threshold)}"
    elif _social(request, config):
        tier, rule, reason = "small", SOCIAL_RULE, _SOCIAL_REASON
    else:
        tier = _by_threshold(score, threshold)
        rule, reason = global_rule, global_reason
    if request.force_tier or (override is not None and override.tier is not None):
        mode = "route"
    elif mode == "cascade" and rule == SOCIAL_RULE:
        reason += "; cascade: small first"  # never straight to large; the answer is still verified
    elif mode == "cascade":
        direct_large = config.routing.cascade.direct_large
        tier = _by_threshold(score, direct_large)
        path = "straight to large" if tier == "large" else "small first"
        reason += f"; cascade: {path} (direct_large {_number(direct_large)})"

    return Decision(
        tier=tier,
        model=config.tiers.get(tier).model,
        score=score,
        threshold=threshold,
        rule=rule,
        reason=reason,
        classifier_version=classifier_version,
        mode=mode,
    )


def _global_threshold(config: RouterConfig, target: ResolvedThreshold | None) -> tuple[str, float, str]:
    """(rule, threshold, reason) when no override decides."""
    routing = config.routing
    if routing.target_large_fraction is None:
        return "global", routing.threshold, f"global threshold {_number(routing.threshold)}"
    if target is not None and target.fraction == routing.target_large_fraction:
        return "target", target.threshold, target.reason
    unresolved = f"target large fraction {_number(routing.target_large_fraction)} not resolved"
    return "global", routing.threshold, f"global threshold {_number(routing.threshold)} ({unresolved})"


_SOCIAL_REASON = "social turn (greeting, thanks or farewell; no task to fail at)"


def _social(request: Request, config: RouterConfig) -> bool:
    """The last user message is a social turn, and nothing about the request asks for more than a reply."""
    if config.routing.social_turns != "small" or request.tools or request.response_format.type != "text":
        return False
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    return is_social_turn(last_user)


def _first_override(overrides: tuple[Override, ...], request: Request) -> tuple[int, Override | None]:
    tools, response_format = bool(request.tools), request.response_format.type
    for index, override in enumerate(overrides):
        if override.matches(request.metadata, tools=tools, response_format=response_format):
            return index, override
    return -1, None


def _by_threshold(score: float, threshold: float) -> Tier:
    return "large" if score >= threshold else "small"


def _as_tier(name: str) -> Tier:
    for tier in TIERS:
        if tier == name:
            return tier
    raise ValueError(f"unknown tier {name!r}")


def _number(value: float) -> str:
    return f"{value:g}"
