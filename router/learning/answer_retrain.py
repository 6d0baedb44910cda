"""Retraining the cascade's answer-quality head from the request log.

A row the cascade verified keeps the small answer (`small_response`, also after an escalation), what the
verifiers read (`verifier_inputs`: finish reason, token counts, schema check, the log-probability summaries,
the consistency verifier's second answer) and, once feedback or `rightsize label` confirmed it, `small_ok`:
whether that small answer was good. Those rows are the answer head's training set; the head is compared with
the served one on a stable held-out slice the way the prompt classifier is (router.learning.retrain), as a
cascade ranks answers: escalating the lowest P(good) first is the quality-vs-large-share curve, so AUC and
APGR mean what they mean there.

The cascade's own verdict (`escalated`) is never a label here: it is what the head is trying to improve on.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier.answer import AnswerInput, ConfidenceFeatures
from router.learning.retrain import Comparison, split_by
from router.requestlog import LogRecord

if TYPE_CHECKING:
    from classifier.answer import AnswerExample, AnswerRecipe
    from classifier.data import Example


@dataclass(frozen=True)
class LoggedAnswer(AnswerInput):
    """A logged small answer: its confidence is the summaries the verifier logged (not the tokens)."""

    features: ConfidenceFeatures | None = None

    def confidence(self) -> ConfidenceFeatures | None:
        return self.features


def logged_features(inputs: dict[str, Any]) -> ConfidenceFeatures | None:
    """The log-probability summaries the verifier logged, or None when the small tier returned none."""
    names = ("mean_logprob", "min_logprob", "mean_margin", "low_confidence_share")
    if not inputs.get("logprob_tokens") or any(inputs.get(name) is None for name in names):
        return None
    mean, low, margin, share = (float(inputs[name]) for name in names)
    return ConfidenceFeatures(mean, low, margin, share, tokens=int(inputs["logprob_tokens"]))


def logged_answer(record: LogRecord) -> LoggedAnswer | None:
    """The AnswerInput the head saw for a cascade-verified record (its confidence from the logged
    summaries: the log keeps those, not the tokens), or None when the record lacks the small answer."""
    if record.small_response is None or record.prompt is None:
        return None
    try:
        inputs = json.loads(record.verifier_inputs or "{}")
    except ValueError:
        inputs = {}
    inputs = inputs if isinstance(inputs, dict) else {}
    tokens = inputs.get("completion_tokens")
    schema_valid = inputs.get("schema_valid")
    exemplars = inputs.get("exemplars")
    sample = inputs.get("sample")  # the consistency verifier's second answer, when it ran
    return LoggedAnswer(
        prompt=record.prompt,
        answer=record.small_response,
        finish_reason=inputs.get("finish_reason") or None,
        completion_tokens=int(tokens) if isinstance(tokens, int) else None,
        schema_valid=schema_valid if isinstance(schema_valid, bool) else None,
        features=logged_features(inputs),
        sample=sample if isinstance(sample, str) else None,
        exemplars=exemplars if isinstance(exemplars, int) and exemplars > 0 else 0,
    )


def answer_examples(records: Iterable[LogRecord]) -> list[AnswerExample]:
    """One AnswerExample per cascade-verified record whose small answer has a confirmed label (feedback on
    the small answer, or a judge's verdict); grouped by the request's tenant and task."""
    from classifier.answer import AnswerExample

    examples: dict[str, AnswerExample] = {}
    for record in records:
        if record.small_ok is None:
            continue
        item = logged_answer(record)
        if item is None:
            continue
        group = "/".join(record.metadata.get(key, "-") for key in ("tenant", "task"))
        examples[record.request_id] = AnswerExample(item, int(record.small_ok), group=group)
    return list(examples.values())


def split_answers(
    examples: Sequence[AnswerExample], fraction: float
) -> tuple[list[AnswerExample], list[AnswerExample]]:
    """(train, holdout) by the prompt's hash, as the prompt head splits; RetrainError unless each side
    holds both classes (the training side at least 2 of each)."""

    def refuse(name: str, good: int, bad: int, need: int) -> str:
        return (
            f"the answer head's {name} slice has {good} good and {bad} bad labelled small answers; need at"
            f" least {need} of each (feedback on cascaded calls, or `rightsize label`)"
        )

    return split_by(examples, fraction, lambda e: e.item.prompt, lambda e: e.good, refuse)


def champion_answer_recipe(champion: Path) -> AnswerRecipe:
    """The served head's recipe (its manifest), so that the challenger differs only in its data."""
    from classifier.answer import AnswerRecipe
    from classifier.artifacts import read_manifest
    from classifier.errors import ClassifierError

    try:
        stored = read_manifest(champion).recipe
    except ClassifierError:
        return AnswerRecipe()
    known = {f.name for f in fields(AnswerRecipe)}
    values: dict[str, Any] = {k: v for k, v in stored.items() if k in known}
    try:
        return AnswerRecipe(**values)
    except TypeError:
        return AnswerRecipe()


def train_answer_candidate(
    train: Sequence[AnswerExample], champion: Path, out: Path, say: Callable[[str], None]
) -> str:
    """Train the challenger into `out` (appears whole or not at all) with the champion's recipe and
    embedder file; returns its version."""
    from typing import cast

    from classifier.answer import train_answer_head
    from classifier.artifacts import read_manifest, resolve_embedder
    from classifier.embedding import VARIANT_FILES, Embedder, LongText
    from classifier.errors import ClassifierError
    from classifier.paths import SHIPPED_EMBEDDER

    recipe = champion_answer_recipe(champion)
    embedder_dir, long_text = SHIPPED_EMBEDDER, "truncate"
    try:
        manifest = read_manifest(champion)
        embedder_dir, long_text = resolve_embedder(champion, manifest.embedder), manifest.long_text
    except ClassifierError as exc:
        say(f"the served answer head cannot be read ({exc}); training on the shipped embedder")
    say(
        f"training the answer head on {len(train)} labelled small answers (C={recipe.C:g}, "
        f"embeddings {recipe.embeddings}, embedder {recipe.embedder})"
    )
    embedder = Embedder.from_path(
        embedder_dir, variant=VARIANT_FILES[recipe.embedder], long_text=cast(LongText, long_text)
    )
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = train_answer_head(
        train, embedder, embedder_dir, tmp, recipe=recipe,
        description=f"{len(train)} confirmed small answers from the request log (rightsize retrain)",
    )  # fmt: skip
    os.replace(tmp, out)
    return manifest.version


def as_routing_examples(examples: Sequence[AnswerExample]) -> list[Example]:
    """The held-out answers as the routing evaluation reads them: a row per answer, small_ok = good."""
    from classifier.data import Example

    return [Example(text=e.item.prompt, small_ok=e.good, source="logs") for e in examples]


def compare_answer_heads(
    champion_dir: Path, challenger_dir: Path, holdout: Sequence[AnswerExample], train_rows: int
) -> Comparison:
    """Both heads on the held-out answers; the escalation order is 1 - P(good) (lowest P(good) first)."""
    from classifier.answer import AnswerScorer
    from classifier.errors import ClassifierError
    from classifier.evaluation import evaluate

    items = [e.item for e in holdout]
    rows = as_routing_examples(holdout)
    challenger = AnswerScorer.from_path(challenger_dir)
    champion_report, champion_version = None, f"unloadable ({champion_dir})"
    try:
        champion = AnswerScorer.from_path(champion_dir, embedder=challenger.embedder)
    except ClassifierError:
        try:
            champion = AnswerScorer.from_path(champion_dir)
        except ClassifierError as exc:
            champion = None
            champion_version = f"unloadable: {exc}"
    if champion is not None:
        champion_version = str(champion.version)
        champion_report = evaluate(1.0 - champion.score(items), rows)
    return Comparison(
        challenger_version=str(challenger.version),
        challenger=evaluate(1.0 - challenger.score(items), rows),
        champion_version=champion_version,
        champion=champion_report,
        train_rows=train_rows,
        holdout_rows=len(holdout),
        base_rows=0,
        subject="answer",
    )
