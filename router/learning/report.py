"""The savings report ("token ROI"): tier mix, actual cost vs everything-on-large, latency and fallbacks.

The counterfactual prices each completed call's *logged* usage (prompt and completion tokens) at the
large tier's rate: `tiers.large.input_cost_per_token` / `output_cost_per_token` from the config when set,
else LiteLLM's bundled price map for `tiers.large.model`. It assumes the large model would have used as
many tokens as the model that answered, which is the usual approximation.

Cascade traffic (`routing.mode: cascade`) gets its own block: the share answered by the small tier after
verification, how often each verifier failed the answers it checked (its escalation rate), the cascade
calls' cost against the same calls all on large, and the latency an escalation added (p50/p95).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from router.config import TierSettings
from router.errors import ConfigError
from router.learning.feedback import answered_tier
from router.requestlog import LogRecord

COMPLETION_RPCS = ("Complete", "CompleteStream")


@dataclass(frozen=True)
class Price:
    """USD per prompt token and per completion token, and where the figures come from."""

    input_per_token: float
    output_per_token: float
    source: str

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_per_token + completion_tokens * self.output_per_token


@dataclass(frozen=True)
class TierFigures:
    """Completed calls answered by one tier; latency (total, ms) percentiles by linear interpolation."""

    tier: str
    requests: int
    share: float
    cost_usd: float
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class Point:
    """One completed call on the timeline."""

    ts: datetime
    tier: str
    saving_usd: float


@dataclass(frozen=True)
class CascadeFigures:
    """Completed calls in cascade mode. `verified`: a small answer the verifiers checked; `answered_small`:
    verified and returned (not escalated); `direct_large`: the score sent it straight to the large tier;
    `unverified`: returned with an `unverified:` reason. `escalation_rate`: per verifier, the share of the
    answers it checked that it failed. Costs in USD; `added_ms_*`: what an escalation added."""

    calls: int
    verified: int
    answered_small: int
    escalated: int
    direct_large: int
    unverified: int
    escalation_rate: dict[str, float]
    checked: dict[str, int]
    actual_usd: float
    all_large_usd: float
    added_ms_p50: float | None
    added_ms_p95: float | None

    @property
    def small_share(self) -> float | None:
        """Share of the cascade's calls the small tier answered after verification."""
        return self.answered_small / self.calls if self.calls else None


@dataclass(frozen=True)
class SavingsReport:
    """Figures over the completed (error-free Complete/CompleteStream) calls of a log span; USD."""

    completed: int
    routes: int
    errors: int
    fallbacks: int
    tiers: tuple[TierFigures, ...]
    actual_usd: float
    all_large_usd: float
    price: Price
    timeline: tuple[Point, ...]
    cascade: CascadeFigures | None = None  # None: no cascade-mode call in the span

    @property
    def saving_usd(self) -> float:
        return self.all_large_usd - self.actual_usd

    @property
    def saving_pct(self) -> float | None:
        """Saving as a percentage of the all-large cost (None when that is 0)."""
        return 100 * self.saving_usd / self.all_large_usd if self.all_large_usd > 0 else None


def large_price(large: TierSettings) -> Price:
    """The large tier's price: configured, else LiteLLM's price map; ConfigError when neither has one."""
    if large.has_price:
        return Price(large.input_cost_per_token or 0.0, large.output_cost_per_token or 0.0,
                     "config (tiers.large.input_cost_per_token / output_cost_per_token)")  # fmt: skip
    from router.backends.litellm import import_litellm

    litellm = import_litellm()

    try:
        input_cost, _ = litellm.cost_per_token(model=large.model, prompt_tokens=1, completion_tokens=0)
        _, output_cost = litellm.cost_per_token(model=large.model, prompt_tokens=0, completion_tokens=1)
    except Exception as exc:  # LiteLLM raises a bare Exception for a model missing from its map
        raise ConfigError(
            f"no price for the large tier {large.model}: set tiers.large.input_cost_per_token and"
            " output_cost_per_token in the config"
        ) from exc
    return Price(float(input_cost), float(output_cost), f"LiteLLM's bundled price map ({large.model})")


def build_report(records: Iterable[LogRecord], price: Price) -> SavingsReport:
    """Compute the report from log records (any order)."""
    completed: list[LogRecord] = []
    routes = errors = 0
    for record in records:
        if record.error is not None:
            errors += 1
        elif record.rpc == "Route":
            routes += 1
        elif record.rpc in COMPLETION_RPCS:
            completed.append(record)
    completed.sort(key=lambda r: r.ts)
    timeline = tuple(
        Point(r.ts, answered_tier(r) or "-", price.cost(r.prompt_tokens or 0, r.completion_tokens or 0)
              - (r.cost_usd or 0.0))
        for r in completed
    )  # fmt: skip
    by_tier: dict[str, list[LogRecord]] = {}
    for record in completed:
        by_tier.setdefault(answered_tier(record) or "-", []).append(record)
    tiers = tuple(_tier_figures(tier, rows, len(completed)) for tier, rows in sorted(by_tier.items()))
    actual = sum(r.cost_usd or 0.0 for r in completed)
    return SavingsReport(
        completed=len(completed),
        routes=routes,
        errors=errors,
        fallbacks=sum(1 for r in completed if r.fallback),
        tiers=tiers,
        actual_usd=actual,
        all_large_usd=actual + sum(p.saving_usd for p in timeline),
        price=price,
        timeline=timeline,
        cascade=cascade_figures(completed, price),
    )


def cascade_figures(completed: Sequence[LogRecord], price: Price) -> CascadeFigures | None:
    """The cascade block over completed calls (None when none ran in cascade mode)."""
    rows = [r for r in completed if r.mode == "cascade"]
    if not rows:
        return None
    verified = [r for r in rows if r.small_response is not None]
    checked: dict[str, int] = {}
    failed: dict[str, int] = {}
    for record in verified:
        for verifier, outcome in _checks(record).items():
            if outcome in ("pass", "fail"):
                checked[verifier] = checked.get(verifier, 0) + 1
                failed[verifier] = failed.get(verifier, 0) + (outcome == "fail")
    added = np.array([r.escalation_ms for r in rows if r.escalated and r.escalation_ms is not None])
    p50, p95 = (float(v) for v in np.percentile(added, [50, 95])) if len(added) else (None, None)
    actual = sum(r.cost_usd or 0.0 for r in rows)
    return CascadeFigures(
        calls=len(rows),
        verified=len(verified),
        answered_small=sum(1 for r in verified if not r.escalated),
        escalated=sum(1 for r in rows if r.escalated),
        direct_large=sum(1 for r in rows if r.small_response is None and r.tier == "large"),
        unverified=sum(1 for r in verified if (r.escalation_reason or "").startswith("unverified")),
        escalation_rate={v: failed[v] / n for v, n in sorted(checked.items())},
        checked=dict(sorted(checked.items())),
        actual_usd=actual,
        all_large_usd=sum(price.cost(r.prompt_tokens or 0, r.completion_tokens or 0) for r in rows),
        added_ms_p50=p50,
        added_ms_p95=p95,
    )


def _checks(record: LogRecord) -> dict[str, str]:
    """verifier -> outcome from the logged verifier inputs ({} when unreadable)."""
    try:
        checks = json.loads(record.verifier_inputs or "{}").get("checks", {})
        return {str(k): str(v[0]) for k, v in checks.items()}
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return {}


def _tier_figures(tier: str, rows: Sequence[LogRecord], total: int) -> TierFigures:
    latencies = np.array([r.total_ms for r in rows if r.total_ms is not None], dtype=np.float64)
    p50, p95 = (float(v) for v in np.percentile(latencies, [50, 95])) if len(latencies) else (None, None)
    return TierFigures(tier, len(rows), len(rows) / total, sum(r.cost_usd or 0.0 for r in rows), p50, p95)


def format_report(report: SavingsReport) -> str:
    """The report as plain text."""
    pct = "-" if report.saving_pct is None else f"{report.saving_pct:.1f}%"
    lines = [
        f"completed calls  {report.completed}   (also {report.routes} Route calls, {report.errors} errors)",
        f"fallbacks        {report.fallbacks}",
        f"actual cost      ${report.actual_usd:.6f}",
        f"all-large cost   ${report.all_large_usd:.6f}   (logged usage at the large tier's price)",
        f"saving           ${report.saving_usd:.6f}   ({pct})",
        f"large price      ${report.price.input_per_token:g}/prompt token, "
        f"${report.price.output_per_token:g}/completion token, from {report.price.source}",
        "",
        f"{'tier':<8}{'requests':>10}{'share':>8}{'cost_usd':>14}{'p50_ms':>10}{'p95_ms':>10}",
    ]
    for tier in report.tiers:
        p50 = "-" if tier.p50_ms is None else f"{tier.p50_ms:.1f}"
        p95 = "-" if tier.p95_ms is None else f"{tier.p95_ms:.1f}"
        lines.append(
            f"{tier.tier:<8}{tier.requests:>10}{tier.share:>8.1%}{tier.cost_usd:>14.6f}{p50:>10}{p95:>10}"
        )
    if report.cascade is not None:
        lines += ["", *_format_cascade(report.cascade)]
    return "\n".join(lines)


def _format_cascade(c: CascadeFigures) -> list[str]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    saving = c.all_large_usd - c.actual_usd
    pct = f" ({100 * saving / c.all_large_usd:.1f}%)" if c.all_large_usd > 0 else ""
    lines = [
        f"cascade calls    {c.calls}   ({c.direct_large} straight to large, {c.verified} small answers"
        " verified)",
        f"answered small   {c.answered_small}   ({c.small_share or 0:.1%} of cascade calls, after"
        f" verification; {c.unverified} unverified)",
        f"escalated        {c.escalated}   (added latency p50 {ms(c.added_ms_p50)} ms,"
        f" p95 {ms(c.added_ms_p95)} ms)",
        f"cascade cost     ${c.actual_usd:.6f}   vs all-large ${c.all_large_usd:.6f}: saving"
        f" ${saving:.6f}{pct}",
        f"{'verifier':<12}{'checked':>9}{'escalation_rate':>17}",
    ]
    lines += [f"{v:<12}{c.checked[v]:>9}{rate:>17.1%}" for v, rate in c.escalation_rate.items()]
    return lines


def report_to_json(report: SavingsReport) -> dict[str, Any]:
    """The figures as JSON-ready values (no timeline)."""
    return {
        "completed": report.completed, "routes": report.routes, "errors": report.errors,
        "fallbacks": report.fallbacks, "actual_usd": report.actual_usd, "all_large_usd": report.all_large_usd,
        "saving_usd": report.saving_usd, "saving_pct": report.saving_pct,
        "large_price": {"input_per_token": report.price.input_per_token,
                        "output_per_token": report.price.output_per_token, "source": report.price.source},
        "tiers": [t.__dict__ for t in report.tiers],
        "cascade": None if report.cascade is None else {
            **report.cascade.__dict__, "small_share": report.cascade.small_share},
    }  # fmt: skip


def plot_report(report: SavingsReport, path: Path, buckets: int = 24) -> None:
    """PNG: the tier mix over time (stacked bars) and cumulative savings over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (mix, savings) = plt.subplots(2, 1, figsize=(7, 6), dpi=110, sharex=True)
    points = report.timeline
    if points:
        times = np.array([p.ts.timestamp() for p in points])
        start, span = times[0], max(times[-1] - times[0], 1.0)
        edges = np.linspace(start, start + span, buckets + 1)
        index = np.minimum(((times - start) / span * buckets).astype(int), buckets - 1)
        centres = [datetime.fromtimestamp(t, tz=points[0].ts.tzinfo) for t in (edges[:-1] + edges[1:]) / 2]
        width = span / buckets / 86400 * 0.9  # matplotlib date units are days
        bottom = np.zeros(buckets)
        for tier, colour in (("small", "#2ca02c"), ("large", "#d62728"), ("-", "grey")):
            counts = np.bincount(index[[p.tier == tier for p in points]], minlength=buckets).astype(float)
            if counts.any():
                mix.bar(centres, counts, width=width, bottom=bottom, color=colour, label=tier)
                bottom += counts
        stamps = [p.ts for p in points]
        savings.plot(stamps, np.cumsum([p.saving_usd for p in points]), color="#1f77b4")
    mix.set_ylabel("completed calls")
    mix.set_title("Tier mix over time")
    mix.legend(loc="upper left", fontsize=8)
    savings.set_ylabel("USD")
    savings.set_title("Cumulative saving vs everything on the large tier")
    savings.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
