"""Retraining from the request log: labelled requests -> training set, challenger vs champion on a held-out
slice of the log, and the markdown + PNG report that decides promotion."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from router.errors import RouterError
from router.requestlog import LogRecord

if TYPE_CHECKING:
    from classifier.data import Example
    from classifier.evaluation import Report
    from classifier.recipes import Selection
    from classifier.training import LinearHead, Recipe

LOG_SOURCE = "logs"
VERDICT_SOURCE = "verdict"  # an unconfirmed cascade verdict, used only with `retrain --verdict-weight`
REPORT_MD = "retrain_report.md"
REPORT_PNG = "retrain_report.png"
T = TypeVar("T")


class RetrainError(RouterError):
    """Retraining cannot run (too few labels, a class missing, an unusable output directory)."""


@dataclass(frozen=True)
class Comparison:
    """Champion and challenger on the same held-out slice; `champion` is None when it could not be loaded."""

    challenger_version: str
    challenger: Report
    champion_version: str
    champion: Report | None
    train_rows: int
    holdout_rows: int
    base_rows: int
    selection: Selection | None = None
    subject: str = "prompt"  # "prompt": the prompt classifier; "answer": the cascade's answer-quality head

    @property
    def not_worse(self) -> bool:
        """True when the challenger's AUC and APGR are both at least the champion's (NaN never passes)."""
        if self.champion is None:
            return False
        pairs = ((self.challenger.auc, self.champion.auc), (self.challenger.apgr, self.champion.apgr))
        return all(not math.isnan(new) and (math.isnan(old) or new >= old - 1e-9) for new, old in pairs)


def labelled_examples(records: Iterable[LogRecord], verdict_weight: float = 0.0) -> list[Example]:
    """One Example per distinct logged prompt with a `small_ok` label (the latest record's label wins).

    A cascade verdict nobody confirmed (the verifiers passed or escalated the small answer; no feedback on
    it, no judge) is not a label: the verifiers are what is being checked. With `verdict_weight` > 0 such
    rows are added as source VERDICT_SOURCE (small_ok 1 when the answer stood, 0 when it escalated), each
    weighing `verdict_weight`, for prompts without a confirmed label; `split` keeps them out of the
    held-out slice, so champion and challenger are still compared on confirmed labels only.
    """
    from classifier.data import Example

    latest: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    for record in records:
        if not record.prompt:
            continue
        if record.small_ok is not None:
            latest[record.prompt] = record.small_ok
        elif verdict_weight > 0 and unconfirmed_verdict(record) is not None:
            verdicts[record.prompt] = int(not record.escalated)
    examples = [Example(text=text, small_ok=small_ok, source=LOG_SOURCE) for text, small_ok in latest.items()]
    return examples + [
        Example(text=text, small_ok=small_ok, source=VERDICT_SOURCE, weight=verdict_weight)
        for text, small_ok in verdicts.items()
        if text not in latest
    ]


def unconfirmed_verdict(record: LogRecord) -> bool | None:
    """The cascade's own verdict on a verified small answer (True: it stood), None when there is none (not
    a cascade-verified call, or returned unverified)."""
    if record.small_response is None or record.escalated is None:
        return None
    if (record.escalation_reason or "").startswith("unverified"):
        return None
    return not record.escalated


def in_holdout(text: str, fraction: float) -> bool:
    """Stable split by the prompt's hash, so a prompt held out once is held out by every later run."""
    bucket = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64
    return bucket < fraction


def split(examples: Sequence[Example], fraction: float) -> tuple[list[Example], list[Example]]:
    """(train, holdout); RetrainError unless each side holds both classes of confirmed labels. Unconfirmed
    cascade verdicts (source VERDICT_SOURCE) only ever train."""

    def refuse(name: str, ok: int, bad: int, need: int) -> str:
        return (
            f"the {name} slice has {ok} small_ok=1 and {bad} small_ok=0 labels; need at least"
            f" {need} of each (collect more feedback or run `rightsize label`)"
        )

    confirmed = [e for e in examples if e.source != VERDICT_SOURCE]
    train, holdout = split_by(confirmed, fraction, lambda e: e.text, lambda e: e.small_ok, refuse)
    return train + [e for e in examples if e.source == VERDICT_SOURCE], holdout


def split_by(
    items: Sequence[T],
    fraction: float,
    text: Callable[[T], str],
    label: Callable[[T], int],
    refuse: Callable[[str, int, int, int], str],
) -> tuple[list[T], list[T]]:
    """(train, holdout) by `text`'s hash; RetrainError(refuse(slice, ones, zeros, need)) unless the training
    slice holds 2 and the held-out slice 1 of each `label`."""
    train = [e for e in items if not in_holdout(text(e), fraction)]
    holdout = [e for e in items if in_holdout(text(e), fraction)]
    for name, part, need in (("training", train, 2), ("held-out", holdout, 1)):
        ok = sum(label(e) for e in part)
        if min(ok, len(part) - ok) < need:
            raise RetrainError(refuse(name, ok, len(part) - ok, need))
    return train, holdout


def train_candidate(
    train: Sequence[Example],
    base: Sequence[Example],
    out: Path,
    cache: Path | None,
    say: Callable[[str], None],
    recipe: Recipe | None = None,
    champion: Path | None = None,
) -> Selection:
    """Train on log + base examples into `out` (a fresh directory) with the recipe cross-validation picks
    on the logged examples around `recipe` (default: the shipped one), `champion`'s head as a possible
    prior; returns the selection, which the manifest also records."""
    from classifier.cache import embed_cached
    from classifier.embedding import VARIANT_FILES, Embedder
    from classifier.paths import SHIPPED_EMBEDDER
    from classifier.recipes import select_recipe
    from classifier.scoring import head_inputs
    from classifier.training import Recipe, train_model

    examples = [*train, *base]
    texts = sorted({e.text for e in examples})
    say(f"embedding {len(texts)} prompts ({len(train)} from the log, {len(base)} base rows) ...")
    recipe = recipe or Recipe()
    variant = VARIANT_FILES[recipe.embedder]
    embedder = Embedder.from_path(SHIPPED_EMBEDDER, variant=variant, long_text=recipe.long_text)
    embeddings = embed_cached(embedder, texts, cache)
    inputs = head_inputs(embeddings, texts)
    prior = _prior_head(champion, inputs.shape[1], say) if champion is not None else None
    say(f"choosing the recipe by cross-validation on {len(train)} logged prompts ...")
    selection = select_recipe(train, inputs, texts, recipe, prior)
    best = selection.scores[0]
    say(f"chose {best.describe()}: CV APGR {best.apgr:.3f} (sd {best.apgr_sd:.3f}), AUC {best.auc:.3f}")
    chosen = selection.chosen
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    train_model(
        examples, embeddings, texts, tmp, SHIPPED_EMBEDDER, recipe=chosen,
        prior_head=prior if chosen.prior > 0 else None, metrics={"recipe_selection": selection.summary()},
    )  # fmt: skip
    os.replace(tmp, out)  # the candidate appears whole or not at all
    return selection


def _prior_head(champion: Path, n_inputs: int, say: Callable[[str], None]) -> LinearHead | None:
    """The champion's linear head, or None (said why) when it cannot be read as one."""
    from classifier.errors import ClassifierError
    from classifier.recipes import linear_head

    try:
        return linear_head(champion, n_inputs)
    except ClassifierError as exc:
        say(f"the champion cannot be a prior: {exc}")
        return None


def read_base(path: Path, weight: float) -> list[Example]:
    """The base data file's examples, each weighted `weight` (log examples weigh 1)."""
    from classifier.data import read_examples

    return [replace(example, weight=weight) for example in read_examples([path])]


def compare(
    champion_dir: Path,
    challenger_dir: Path,
    holdout: Sequence[Example],
    train_rows: int,
    base_rows: int,
    selection: Selection | None = None,
) -> Comparison:
    """Score the held-out slice with both models."""
    from classifier.errors import ClassifierError
    from classifier.evaluation import evaluate
    from classifier.scoring import Scorer

    texts = [e.text for e in holdout]
    challenger = Scorer.from_path(challenger_dir)
    champion_report, champion_version = None, f"unloadable ({champion_dir})"
    try:
        champion = Scorer.from_path(champion_dir)
    except ClassifierError as exc:
        champion_version = f"unloadable: {exc}"
    else:
        champion_version = champion.version
        champion_report = evaluate(champion.score(texts), holdout)
    return Comparison(
        challenger_version=challenger.version,
        challenger=evaluate(challenger.score(texts), holdout),
        champion_version=champion_version,
        champion=champion_report,
        train_rows=train_rows,
        holdout_rows=len(holdout),
        base_rows=base_rows,
        selection=selection,
    )


def write_report(comparison: Comparison, directory: Path) -> tuple[Path, Path]:
    """Write the markdown report and the PNG of both quality-vs-large-share curves into `directory`."""
    markdown, png = directory / REPORT_MD, directory / REPORT_PNG
    markdown.write_text(format_comparison(comparison) + f"\n![curves]({REPORT_PNG})\n", encoding="utf-8")
    _plot(comparison, png)
    return markdown, png


def format_comparison(comparison: Comparison) -> str:
    """The markdown table of champion vs challenger on the held-out slice."""
    rows = [("challenger", comparison.challenger_version, comparison.challenger)]
    if comparison.champion is not None:
        rows.insert(0, ("champion", comparison.champion_version, comparison.champion))
    if comparison.subject == "answer":
        intro = [
            "# Retrain report: the answer-quality head",
            "",
            f"Trained on {comparison.train_rows} confirmed small answers from the log; compared on"
            f" {comparison.holdout_rows} held-out ones that neither head was trained on, escalating the"
            " lowest P(good) first. Quality basis: small_ok of the small answer (the large tier is assumed"
            " good).",
        ]
    else:
        intro = [
            "# Retrain report",
            "",
            f"Trained on {comparison.train_rows} labelled logged prompts (+ {comparison.base_rows} base"
            f" rows); compared on {comparison.holdout_rows} held-out logged prompts that neither model was"
            " trained on. Quality basis: small_ok (the large tier is assumed good enough).",
        ]
    lines = [
        *intro,
        "",
        "| model | version | AUC | APGR | CPT(50%) | CPT(80%) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, version, report in rows:
        lines.append(
            f"| {name} | {version} | {report.auc:.4f} | {report.apgr:.4f} | {report.cpt50:.4f} |"
            f" {report.cpt80:.4f} |"
        )
    if comparison.champion is None:
        lines += ["", f"The champion could not be scored: {comparison.champion_version}."]
    verdict = "not worse" if comparison.not_worse else "worse (or not comparable)"
    lines += ["", f"**Challenger vs champion: {verdict}** on AUC and APGR."]
    if comparison.selection is not None:
        selection = comparison.selection
        lines += [
            "",
            "## Recipe, chosen on the logged labels",
            "",
            f"{selection.repeats}x{selection.folds}-fold cross-validation on the {selection.prompts} training"
            " prompts (pooled out-of-fold APGR; prior 1 = the champion's score as an offset)."
            " Best candidates:",
            "",
            selection.table(),
        ]
    return "\n".join(lines)


def _plot(comparison: Comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.2), dpi=110)
    series = [("challenger", comparison.challenger, "#1f77b4")]
    if comparison.champion is not None:
        series.insert(0, ("champion", comparison.champion, "#ff7f0e"))
    for name, report, colour in series:
        curve = report.curve
        axes.plot(curve.large_share, curve.quality, color=colour, label=f"{name} (APGR {report.apgr:.3f})")
    report = comparison.challenger
    axes.plot([0, 1], [report.quality_small, report.quality_large], "--", color="grey", label="random")
    axes.set_xlabel("share of calls sent to the large model")
    axes.set_ylabel("mean quality (small_ok)")
    axes.set_title(f"Held-out logged prompts (n={comparison.holdout_rows})")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def champion_recipe(champion_dir: Path) -> Recipe:
    """The recipe the champion was trained with (its manifest), so that the challenger differs only in
    its data: the same embedder file, long-text strategy, label and regularisation. The shipped recipe when
    the champion's manifest cannot be read."""
    from classifier.artifacts import read_manifest
    from classifier.errors import ModelLoadError
    from classifier.training import Recipe

    try:
        return Recipe.from_manifest(read_manifest(champion_dir).recipe)
    except ModelLoadError:
        return Recipe()
