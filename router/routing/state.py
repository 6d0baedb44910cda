"""The live routing state: one immutable snapshot of what a decision depends on, and its one writer.

A request reads `LiveState.current` once and decides with that snapshot alone, so a reload, a promotion
or a new target threshold never mixes into a request already under way. `install()` is the only way to
change it: the config reloader, the target-share resolver and model promotion all go through it, and
nothing else swaps the pipeline's attributes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.config import RouterConfig
from router.routing.thresholds import ResolvedThreshold

if TYPE_CHECKING:
    from classifier.answer import AnswerScorer
    from router.scoring_queue import TextScorer

_KEEP: Any = object()


@dataclass(frozen=True)
class RoutingState:
    """What one decision depends on. `serial` names the snapshot: 0 at start, one more per install."""

    config: RouterConfig
    scorer: TextScorer  # the classifier
    target: ResolvedThreshold | None = None  # config.routing.target_large_fraction resolved
    serial: int = 0
    verifier: AnswerScorer | None = None  # the cascade's answer-quality head; None: not loaded
    verifier_error: str = ""  # why it is not loaded ("" when it is, or the cascade is off)


class LiveState:
    """Owns the current RoutingState; `install()` is its only writer (safe from any thread)."""

    def __init__(
        self,
        config: RouterConfig,
        scorer: TextScorer,
        verifier: AnswerScorer | None = None,
        verifier_error: str = "",
    ) -> None:
        self._current = RoutingState(config, scorer, verifier=verifier, verifier_error=verifier_error)
        self._lock = threading.Lock()  # model promotion installs from the watcher's thread

    @property
    def current(self) -> RoutingState:
        return self._current

    def install(
        self,
        *,
        config: RouterConfig = _KEEP,
        scorer: TextScorer = _KEEP,
        target: ResolvedThreshold | None = _KEEP,
        verifier: AnswerScorer | None = _KEEP,
        verifier_error: str = _KEEP,
    ) -> RoutingState:
        """Replace the given parts at once (the others are kept); returns the new snapshot."""
        with self._lock:
            previous = self._current
            self._current = RoutingState(
                config=previous.config if config is _KEEP else config,
                scorer=previous.scorer if scorer is _KEEP else scorer,
                target=previous.target if target is _KEEP else target,
                serial=previous.serial + 1,
                verifier=previous.verifier if verifier is _KEEP else verifier,
                verifier_error=previous.verifier_error if verifier_error is _KEEP else verifier_error,
            )
            return self._current
