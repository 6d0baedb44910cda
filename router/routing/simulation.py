"""What-if: the large share, cost and quality other thresholds would have given on logged or labelled traffic.

Assumptions, stated once:
- a request's score does not depend on the threshold, so it goes large exactly when score >= threshold;
  a social turn (rule "social" in the log, or a prompt `classifier.social` calls one) stays small at every
  threshold, as the server routes it; force_tier and fixed-tier overrides are not re-applied;
- its token counts are the same on either tier (the logged usage is reused for the other tier);
- tier prices per token come from the tier's `input_cost_per_token` / `output_cost_per_token` in the
  config, else 0 for a local model (ollama, vLLM), else LiteLLM's bundled price map (no network);
- quality needs labels: with `small_score`/`large_score` on every labelled row those are the qualities,
  otherwise `small_ok` (1 good enough, 0 not) and the large tier is taken as always good enough.
  PGR (performance gap recovered) = (quality - all-small quality) / (all-large - all-small quality).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from router.config import TierSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrafficRow:
    """One logged or labelled request: its score in [0, 1], token usage, and outcome labels if known."""

    score: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    small_ok: int | None = None
    small_score: float | None = None
    large_score: float | None = None
    social: bool = False  # a social turn: small whatever the threshold


@dataclass(frozen=True)
class TierPrice:
    """USD per token of one tier, and where the figures came from."""

    input_per_token: float
    output_per_token: float
    source: str  # "config", "local (free)", "litellm price map"


@dataclass(frozen=True)
class Outcome:
    """The figures for one threshold. `cost_usd` is None without usage, quality/PGR None without labels."""

    label: str
    threshold: float
    large_share: float
    cost_usd: float | None
    quality: float | None
    pgr: float | None


@dataclass(frozen=True)
class Simulation:
    """All thresholds' outcomes plus the always-small / always-large baselines."""

    rows: int
    priced_rows: int
    labelled_rows: int
    quality_basis: str
    outcomes: tuple[Outcome, ...]
    baselines: tuple[Outcome, Outcome]


def tier_price(settings: TierSettings) -> TierPrice | None:
    """The tier's price (see the module docstring for the order); None when nothing knows it."""
    if settings.has_price:
        return TierPrice(
            settings.input_cost_per_token or 0.0, settings.output_cost_per_token or 0.0, "config"
        )
    if settings.is_self_hosted:
        return TierPrice(0.0, 0.0, "local (free)")
    from router.backends.litellm import import_litellm

    litellm = import_litellm()  # slow (~2 s): only when a tier has no configured price

    litellm.suppress_debug_info = True
    try:
        info = litellm.get_model_info(settings.model)
    except Exception as exc:  # LiteLLM raises a bare Exception for models missing from its map
        log.debug("no price for %s: %s", settings.model, exc)
        return None
    return TierPrice(
        float(info.get("input_cost_per_token") or 0.0),
        float(info.get("output_cost_per_token") or 0.0),
        "litellm price map",
    )


def simulate(
    rows: Sequence[TrafficRow],
    thresholds: Sequence[float],
    small: TierPrice | None,
    large: TierPrice | None,
) -> Simulation:
    """Outcomes at each threshold (large when score >= threshold and not a social turn) and at always-small
    / always-large."""
    import numpy as np

    if not rows:
        raise ValueError("no requests to simulate on")
    scores = np.array([row.score for row in rows], dtype=np.float64)
    social = np.array([row.social for row in rows], dtype=bool)
    priced = np.array([row.prompt_tokens is not None or row.completion_tokens is not None for row in rows])
    labelled = np.array([row.small_ok is not None for row in rows])
    graded = bool(labelled.any()) and all(
        row.small_score is not None and row.large_score is not None
        for row in rows
        if row.small_ok is not None
    )
    basis = "small_score/large_score" if graded else "small_ok (large assumed good enough)"
    prompt = np.array([row.prompt_tokens or 0 for row in rows], dtype=np.float64)
    completion = np.array([row.completion_tokens or 0 for row in rows], dtype=np.float64)
    costs = None
    if priced.any() and small is not None and large is not None:
        costs = tuple(
            prompt * price.input_per_token + completion * price.output_per_token for price in (small, large)
        )
    if graded:
        small_quality = np.array([row.small_score or 0.0 for row in rows], dtype=np.float64)
        large_quality = np.array([row.large_score or 0.0 for row in rows], dtype=np.float64)
    else:
        small_quality = np.array([float(row.small_ok or 0) for row in rows], dtype=np.float64)
        large_quality = np.ones(len(rows))

    def outcome(label: str, threshold: float, goes_large: np.ndarray) -> Outcome:
        cost = None if costs is None else float(np.where(goes_large, costs[1], costs[0])[priced].sum())
        quality = None
        if labelled.any():
            quality = float(np.where(goes_large, large_quality, small_quality)[labelled].mean())
        return Outcome(label, threshold, float(goes_large.mean()), cost, quality, None)

    all_small = outcome("always small", math.inf, np.zeros(len(rows), dtype=bool))
    all_large = outcome("always large", 0.0, np.ones(len(rows), dtype=bool))
    outcomes = tuple(
        _with_pgr(outcome(f"{t:g}", t, (scores >= t) & ~social), all_small, all_large) for t in thresholds
    )
    baselines = (_with_pgr(all_small, all_small, all_large), _with_pgr(all_large, all_small, all_large))
    return Simulation(len(rows), int(priced.sum()), int(labelled.sum()), basis, outcomes, baselines)


def _with_pgr(outcome: Outcome, all_small: Outcome, all_large: Outcome) -> Outcome:
    if outcome.quality is None or all_small.quality is None or all_large.quality is None:
        return outcome
    gap = all_large.quality - all_small.quality
    pgr = (outcome.quality - all_small.quality) / gap if gap > 0 else None
    return dataclasses.replace(outcome, pgr=pgr)


def format_table(simulation: Simulation) -> str:
    """The outcomes as a plain-text table, thresholds first, then the two baselines."""
    header = f"{'threshold':<14}{'large share':>12}{'est. cost USD':>16}{'quality':>10}{'PGR':>8}"
    lines = [header]
    for outcome in (*simulation.outcomes, *simulation.baselines):
        cost = "-" if outcome.cost_usd is None else f"{outcome.cost_usd:.6f}"
        quality = "-" if outcome.quality is None else f"{outcome.quality:.4f}"
        pgr = "-" if outcome.pgr is None else f"{outcome.pgr:.4f}"
        lines.append(f"{outcome.label:<14}{outcome.large_share:>12.1%}{cost:>16}{quality:>10}{pgr:>8}")
    return "\n".join(lines)


def plot(
    simulation: Simulation,
    rows: Sequence[TrafficRow],
    small: TierPrice | None,
    large: TierPrice | None,
    path: Path,
) -> None:
    """Save large share, quality and cost against the threshold, the chosen thresholds marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [i / 100 for i in range(101)]
    curve = simulate(rows, grid, small, large).outcomes
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.0), dpi=110, sharex=True)
    top.plot(grid, [o.large_share for o in curve], color="#d62728", label="large share")
    if simulation.labelled_rows:
        top.plot(grid, [o.quality for o in curve], color="#1f77b4", label="quality")
    for outcome in simulation.outcomes:
        top.axvline(outcome.threshold, color="grey", alpha=0.3, linestyle="--")
    top.set_ylabel("share / quality")
    top.set_ylim(-0.02, 1.02)
    top.legend(loc="best", fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(f"What-if on {simulation.rows} requests")
    if simulation.priced_rows and curve[0].cost_usd is not None:
        bottom.plot(grid, [o.cost_usd for o in curve], color="#2ca02c", label="estimated cost")
        bottom.scatter(
            [o.threshold for o in simulation.outcomes],
            [o.cost_usd for o in simulation.outcomes],
            color="#2ca02c",
            zorder=3,
        )
    else:
        bottom.text(
            0.5, 0.5, "no usage or prices: cost not estimated", ha="center", transform=bottom.transAxes
        )
    bottom.set_xlabel("threshold (large when score >= threshold)")
    bottom.set_ylabel("USD")
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# The cascade's thresholds (routing.cascade.head.threshold, confidence.min_score), replayed from the log. A
# logged cascade row keeps each verifier's [outcome, value] (`verifier_inputs` "checks"). Under other
# thresholds a row escalates when its form check failed, its confidence score is below the candidate
# confidence threshold, its consistency check failed (replayed as logged), or its answer head's P(good) is
# below the candidate head threshold (cheapest first, as the server checks). A head value the log lacks (the
# head did not run because confidence had already failed) cannot be replayed: such a row counts as escalated
# and is reported in `unreplayed`. A row without checks (sent straight to large) counts as answered large.
# Quality: an answer kept small is worth its `small_ok` label, a large answer is taken as good enough; only
# labelled rows count.


@dataclass(frozen=True)
class CascadeRow:
    """One logged cascade call: each verifier's (outcome, value), or no checks when it went straight large."""

    checks: dict[str, tuple[str, float | None]]
    small_ok: int | None = None

    @property
    def verified(self) -> bool:
        return bool(self.checks)


@dataclass(frozen=True)
class CascadeOutcome:
    """The figures for one (head, confidence) threshold pair; quality None without labels."""

    head_threshold: float
    confidence_threshold: float | None
    escalation_rate: float  # over the small answers verified
    small_share: float  # over all cascade calls: answered by the small tier after verification
    quality: float | None
    unreplayed: int


def cascade_escalates(row: CascadeRow, head: float, confidence: float | None) -> tuple[bool, bool]:
    """(escalates, replayable) for one verified row under these thresholds (None: confidence as logged)."""
    form = row.checks.get("form")
    if form is not None and form[0] == "fail":
        return True, True
    conf = row.checks.get("confidence")
    if conf is not None and conf[0] in ("pass", "fail"):
        if confidence is None:
            if conf[0] == "fail":
                return True, True
        elif conf[1] is not None and conf[1] < confidence:
            return True, True
    consistency = row.checks.get("consistency")
    if consistency is not None and consistency[0] == "fail":  # replayed as logged
        return True, True
    head_check = row.checks.get("head")
    if head_check is None or head_check[0] not in ("pass", "fail") or head_check[1] is None:
        # Not run: unreplayable when confidence failed in the log (the head would have run now).
        unreplayed = conf is not None and conf[0] == "fail" and "head" not in row.checks
        return unreplayed, not unreplayed
    return head_check[1] < head, True


def simulate_cascade(
    rows: Sequence[CascadeRow],
    head_thresholds: Sequence[float],
    confidence_thresholds: Sequence[float | None],
) -> tuple[CascadeOutcome, ...]:
    """Escalation rate, share answered small and quality at each (head, confidence) threshold pair."""
    if not rows:
        raise ValueError("no cascade requests to simulate on")
    verified = [row for row in rows if row.verified]
    outcomes = []
    for confidence in confidence_thresholds:
        for head in head_thresholds:
            replay = [cascade_escalates(row, head, confidence) for row in verified]
            escalated = sum(up for up, _ in replay)
            answers = [
                (1.0 if up else float(row.small_ok))
                for row, (up, _) in zip(verified, replay, strict=True)
                if row.small_ok is not None
            ] + [1.0 for row in rows if not row.verified and row.small_ok is not None]
            outcomes.append(
                CascadeOutcome(
                    head,
                    confidence,
                    escalated / len(verified) if verified else 0.0,
                    (len(verified) - escalated) / len(rows),
                    sum(answers) / len(answers) if answers else None,
                    sum(not ok for _, ok in replay),
                )
            )
    return tuple(outcomes)


def head_threshold_for_rate(
    rows: Sequence[CascadeRow], rate: float, confidence: float | None
) -> CascadeOutcome:
    """The highest head threshold whose replayed escalation rate is at most `rate` (the logged head values,
    0 and 1 are the candidates: between two values the rate does not change)."""
    values = {0.0, 1.0}
    for row in rows:
        head = row.checks.get("head")
        if head is not None and head[1] is not None:
            values.add(float(head[1]))
    outcomes = simulate_cascade(rows, sorted(values), [confidence])
    if not any(row.verified for row in rows):
        raise ValueError("no verified small answers in the log")
    within = [outcome for outcome in outcomes if outcome.escalation_rate <= rate]
    return within[-1] if within else outcomes[0]


def format_cascade_table(outcomes: Sequence[CascadeOutcome]) -> str:
    """The cascade outcomes as a plain-text table."""
    header = (
        f"{'head':>8}{'confidence':>12}{'escalated':>11}{'small share':>13}{'quality':>9}{'unreplayed':>12}"
    )
    lines = [header]
    for o in outcomes:
        conf = "logged" if o.confidence_threshold is None else f"{o.confidence_threshold:g}"
        quality = "-" if o.quality is None else f"{o.quality:.4f}"
        lines.append(
            f"{o.head_threshold:>8g}{conf:>12}{o.escalation_rate:>11.1%}{o.small_share:>13.1%}"
            f"{quality:>9}{o.unreplayed:>12}"
        )
    return "\n".join(lines)
