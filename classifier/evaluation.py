"""Routing quality: AUC, the quality-vs-large-share curve, APGR and CPT as RouteLLM defines them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.data import Example


@dataclass(frozen=True)
class Curve:
    """Quality as the share of large-model calls goes 0 -> 1 (rows routed large by descending score)."""

    large_share: np.ndarray  # [m] in [0, 1], increasing
    quality: np.ndarray  # [m] mean quality of the routed answers
    pgr: np.ndarray  # [m] performance gap recovered: 0 = all small, 1 = all large


@dataclass(frozen=True)
class Report:
    """The figures `rightsize eval` prints. APGR 0.5 = random routing; CPT(x) in [0, 1], lower is better."""

    rows: int
    auc: float
    apgr: float
    cpt50: float
    cpt80: float
    quality_small: float
    quality_large: float
    quality_basis: str
    curve: Curve


def outcome_matrix(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, str]:
    """(small quality, large quality, basis). Real scores when every row has them and a scale, each scale
    mapped to [0, 1] (judge1-10 as (s - 1) / 9) so that rows on different scales can be averaged; else
    small_ok vs 1."""
    normalised = [e.normalised_scores() for e in examples]
    if examples and all(pair is not None for pair in normalised):
        small = np.array([pair[0] for pair in normalised if pair is not None], dtype=np.float64)
        large = np.array([pair[1] for pair in normalised if pair is not None], dtype=np.float64)
        scales = sorted({str(e.scale) for e in examples})
        return small, large, f"small_score/large_score, scaled to [0, 1] per scale ({', '.join(scales)})"
    if all(e.small_score is not None and e.large_score is not None for e in examples):
        small = np.array([e.small_score for e in examples], dtype=np.float64)
        large = np.array([e.large_score for e in examples], dtype=np.float64)
        return small, large, "small_score/large_score"
    small = np.array([e.small_ok for e in examples], dtype=np.float64)
    return small, np.ones_like(small), "small_ok (large assumed good enough)"


def evaluate_by_scale(scores: np.ndarray, examples: Sequence[Example]) -> dict[str, Report]:
    """One report per score scale (rows without scores under "unscored"), each on its own rows."""
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(example.scale or "unscored", []).append(index)
    scores = np.asarray(scores)
    return {
        scale: evaluate(scores[rows], [examples[i] for i in rows]) for scale, rows in sorted(groups.items())
    }


def routing_curve(scores: np.ndarray, small: np.ndarray, large: np.ndarray) -> Curve:
    """Exact curve: the top-k scores go large, for k at every tie-group boundary (ties split evenly)."""
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum(large[order] - small[order])])
    sorted_scores = scores[order]
    boundaries = [0] + [k for k in range(1, n) if sorted_scores[k] != sorted_scores[k - 1]] + [n]
    ks = np.asarray(boundaries)
    quality = (small.sum() + gain[ks]) / n
    gap = quality[-1] - quality[0]
    pgr = (quality - quality[0]) / gap if gap > 0 else np.full(len(ks), np.nan)
    return Curve(large_share=ks / n, quality=quality, pgr=pgr)


def auc_need_large(scores: np.ndarray, small_ok: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC of the score against `small_ok == 0` (nan with one class)."""
    from sklearn.metrics import roc_auc_score

    target = (small_ok == 0).astype(int)
    if target.min() == target.max():
        return float("nan")
    return float(roc_auc_score(target, scores, sample_weight=weights))


def cpt(curve: Curve, level: float) -> float:
    """Smallest large share whose PGR reaches `level` (linear between curve points)."""
    pgr = curve.pgr
    if np.isnan(pgr).all():
        return float("nan")
    above = np.nonzero(pgr >= level - 1e-12)[0]
    first = int(above[0])
    if first == 0:
        return float(curve.large_share[0])
    x0, x1 = curve.large_share[first - 1], curve.large_share[first]
    y0, y1 = pgr[first - 1], pgr[first]
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))


def evaluate(scores: np.ndarray, examples: Sequence[Example]) -> Report:
    """All figures for one scored set."""
    small, large, basis = outcome_matrix(examples)
    curve = routing_curve(np.asarray(scores, dtype=np.float64), small, large)
    labels = np.array([e.small_ok for e in examples])
    apgr = (
        float(np.trapezoid(curve.pgr, curve.large_share)) if not np.isnan(curve.pgr).all() else float("nan")
    )
    return Report(
        rows=len(examples),
        auc=auc_need_large(np.asarray(scores), labels),
        apgr=apgr,
        cpt50=cpt(curve, 0.5),
        cpt80=cpt(curve, 0.8),
        quality_small=float(curve.quality[0]),
        quality_large=float(curve.quality[-1]),
        quality_basis=basis,
        curve=curve,
    )


def format_report(report: Report) -> str:
    """A plain-text table of the router beside the random and always-small baselines."""
    lines = [
        f"rows: {report.rows}   quality from: {report.quality_basis}",
        f"quality all-small {report.quality_small:.4f}   all-large {report.quality_large:.4f}",
        "",
        f"{'router':<14}{'AUC':>8}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}",
        f"{'this model':<14}{report.auc:>8.4f}{report.apgr:>8.4f}{report.cpt50:>10.4f}{report.cpt80:>10.4f}",
        f"{'random':<14}{0.5:>8.4f}{0.5:>8.4f}{0.5:>10.4f}{0.8:>10.4f}",
        f"{'always small':<14}{'-':>8}{0.0:>8.4f}{'never':>10}{'never':>10}",
    ]
    return "\n".join(lines)


def plot_curve(report: Report, path: Path, title: str = "Routing quality vs large-model share") -> None:
    """Save the quality-vs-large-share curve with the random line and the all-small / all-large points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.2), dpi=110)
    curve = report.curve
    axes.plot(curve.large_share, curve.quality, label=f"rightsize (APGR {report.apgr:.3f})", color="#1f77b4")
    axes.plot(
        [0, 1], [report.quality_small, report.quality_large], "--", color="grey", label="random (APGR 0.5)"
    )
    axes.scatter([0], [report.quality_small], color="#2ca02c", zorder=3, label="always small")
    axes.scatter([1], [report.quality_large], color="#d62728", zorder=3, label="always large")
    axes.set_xlabel("share of calls sent to the large model")
    axes.set_ylabel(f"mean quality ({report.quality_basis.split(' ')[0]})")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
