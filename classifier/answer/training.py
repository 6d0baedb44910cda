"""Training the answer-quality head on labelled answers, and writing its model directory."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from classifier.answer.inputs import ANSWER_FEATURE_NAMES, ANSWER_FEATURES_VERSION, AnswerInput, head_inputs
from classifier.artifacts import HEAD_FILE, HeadSpec, Manifest, embedder_ref, write_manifest
from classifier.embedding import VARIANT_FILES, Embedder, EmbedderVariant
from classifier.errors import DataError
from classifier.export import sha256_file
from classifier.training import HeadTrainer, Recipe, export_head

HEAD_KIND = "answer_quality:standard_scaler+logistic_regression"


@dataclass(frozen=True)
class AnswerRecipe:
    """How the answer head is trained. `C`: inverse L2 strength. `embeddings`: whether the prompt and
    answer embeddings are inputs (else the scalar features only: chosen by leave-one-task-family-out
    validation, where the 768 embedding columns learned the training families and ranked held-out ones
    worse than random; see benchmarks/cascade.py). `mask_share`: share of training rows whose
    log-probabilities are hidden, so the head also serves backends that return none."""

    C: float = 0.1
    embeddings: bool = False
    mask_share: float = 0.15
    calibration_folds: int = 5
    seed: int = 0
    embedder: EmbedderVariant = "int8"


@dataclass(frozen=True)
class AnswerExample:
    """One labelled answer: `good` 1 when the small answer was good enough, 0 when it was not.
    `group` (a task family, tenant or source) is recorded in the manifest's counts."""

    item: AnswerInput
    good: int
    group: str = "unknown"
    weight: float = 1.0


def build_inputs(
    embedder: Embedder, items: Sequence[AnswerInput], embeddings: bool, masked: Sequence[bool] | None = None
) -> np.ndarray:
    """The head's input matrix for `items` (embedding both prompts and answers with `embedder`)."""
    prompts = embedder.embed([item.prompt for item in items])
    answers = embedder.embed([item.answer for item in items])
    return select_inputs(head_inputs(prompts, answers, items, masked), embeddings, embedder.dim)


def select_inputs(full: np.ndarray, embeddings: bool, dim: int) -> np.ndarray:
    """Drop the embedding columns of a full input matrix when the recipe does not use them."""
    return full if embeddings else full[:, 2 * dim :]


def mask_rows(count: int, recipe: AnswerRecipe) -> list[bool]:
    """Which training rows have their log-probabilities hidden (deterministic for the recipe's seed)."""
    rng = np.random.default_rng(recipe.seed)
    return list(rng.random(count) < recipe.mask_share)


def fit_head(inputs: np.ndarray, good: np.ndarray, weights: np.ndarray, recipe: AnswerRecipe) -> HeadTrainer:
    """Fit scaler + logistic regression to P(good), Platt-calibrated on out-of-fold decisions."""
    if len(good) != len(inputs):
        raise DataError("inputs and labels differ in length")
    trainer_recipe = Recipe(C=recipe.C, calibration_folds=recipe.calibration_folds, seed=recipe.seed)
    return HeadTrainer(trainer_recipe).fit(inputs, good.astype(np.float64), weights)


def train_answer_head(
    examples: Sequence[AnswerExample],
    embedder: Embedder,
    embedder_dir: Path,
    out_dir: Path,
    *,
    recipe: AnswerRecipe = AnswerRecipe(),
    data_files: Sequence[Path] = (),
    description: str = "",
    metrics: dict[str, object] | None = None,
) -> Manifest:
    """Fit, export and write a complete answer-head directory (manifest like the prompt classifier's).

    `embedder` must be the `recipe.embedder` file of `embedder_dir`. This is what retraining calls with
    logged rows (prompt, answer, finish reason, log-probabilities, label).
    """
    if not examples:
        raise DataError("no labelled answers to train on")
    items = [example.item for example in examples]
    good = np.array([example.good for example in examples], dtype=np.float64)
    weights = np.array([example.weight for example in examples], dtype=np.float64)
    inputs = build_inputs(embedder, items, recipe.embeddings, mask_rows(len(items), recipe))
    trainer = fit_head(inputs, good, weights, recipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    head_path = out_dir / HEAD_FILE
    export_head(trainer, inputs.shape[1], head_path)
    head_sha = sha256_file(head_path)
    from sklearn.metrics import roc_auc_score

    oof = trainer.oof_probability()
    manifest = Manifest(
        version=hashlib.sha256(head_sha.encode() + repr(ANSWER_FEATURE_NAMES).encode()).hexdigest()[:12],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        embedder=embedder_ref(out_dir, embedder_dir, VARIANT_FILES[recipe.embedder]),
        head=HeadSpec(
            sha256=head_sha,
            kind=HEAD_KIND,
            calibration=f"platt ({recipe.calibration_folds}-fold out-of-fold)",
            features=list(ANSWER_FEATURE_NAMES),
            features_version=ANSWER_FEATURES_VERSION,
            inputs=int(inputs.shape[1]),
        ),
        long_text=embedder.long_text,
        training_data=_summary(examples, data_files, description),
        recipe={**asdict(recipe), "target": "P(small answer is good)"},
        metrics={
            "out_of_fold": {
                "rows": len(examples),
                "auc_good": round(float(roc_auc_score(good, oof)), 4),
                "good_share": round(float(good.mean()), 4),
            },
            **(metrics or {}),
        },
    )
    write_manifest(out_dir, manifest)
    return manifest


def _summary(examples: Sequence[AnswerExample], files: Sequence[Path], description: str) -> dict[str, object]:
    digest = hashlib.sha256()
    for path in files:
        digest.update(sha256_file(path).encode())
    if not files:
        for example in examples:
            digest.update(
                f"{example.good}\t{example.group}\t{example.item.prompt}\t{example.item.answer}\n".encode()
            )
    groups = Counter(example.group for example in examples)
    good = Counter(example.group for example in examples if example.good)
    return {
        "sha256": digest.hexdigest(),
        "files": [str(path) for path in files],
        "rows": len(examples),
        "description": description,
        "rows_by_group": dict(sorted(groups.items())),
        "good_by_group": {group: good[group] for group in sorted(groups)},
    }
