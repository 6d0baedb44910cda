"""Training the answer-quality head on labelled answers, and writing its model directory."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from classifier.answer.inputs import (
    ANSWER_FEATURE_NAMES,
    ANSWER_FEATURES_VERSION,
    COSINE_FEATURE,
    SAMPLE_FEATURES,
    AnswerInput,
    head_inputs,
)
from classifier.artifacts import HEAD_FILE, HeadSpec, Manifest, embedder_ref, write_manifest
from classifier.embedding import VARIANT_FILES, Embedder, EmbedderVariant
from classifier.errors import DataError
from classifier.export import sha256_file
from classifier.training import HeadTrainer, Recipe, export_head

HEAD_KIND = "answer_quality:standard_scaler+logistic_regression"
# The shipped head's scalar inputs: chosen by leave-one-task-family-out validation (benchmarks/cascade.py):
# round 1's 14 less the prompt-answer cosine, which added nothing held out (mean APGR 0.547 without it,
# 0.543 with) and is the only one that needs the answer embedded (4.5 ms of the verifier's 4.7 ms).
DEFAULT_V1: tuple[str, ...] = ANSWER_FEATURE_NAMES[:14]
DEFAULT_FEATURES: tuple[str, ...] = tuple(n for n in DEFAULT_V1 if n != COSINE_FEATURE)


def feature_columns(names: Sequence[str]) -> np.ndarray:
    """The positions of `names` among ANSWER_FEATURE_NAMES (the full scalar vector head_inputs builds)."""
    return np.array([ANSWER_FEATURE_NAMES.index(name) for name in names], dtype=np.int64)


@dataclass(frozen=True)
class AnswerRecipe:
    """How the answer head is trained. `C`: inverse L2 strength. `embeddings`: whether the prompt and
    answer embeddings are inputs (else the scalar features only: chosen by leave-one-task-family-out
    validation, where the 768 embedding columns learned the training families and ranked held-out ones
    worse than random; see benchmarks/cascade.py). `mask_share`: share of training rows whose
    log-probabilities are hidden, so the head also serves backends that return none. `features`: the
    scalar inputs it reads (a subset of ANSWER_FEATURE_NAMES, kept in that order). `sample_mask_share`:
    share of training rows whose second sample is hidden, when the features include the self-consistency
    ones, so such a head also serves calls made without a second sample."""

    C: float = 0.1
    embeddings: bool = False
    mask_share: float = 0.15
    calibration_folds: int = 5
    seed: int = 0
    embedder: EmbedderVariant = "int8"
    features: tuple[str, ...] = DEFAULT_FEATURES
    sample_mask_share: float = 0.5

    def __post_init__(self) -> None:
        unknown = sorted(set(self.features) - set(ANSWER_FEATURE_NAMES))
        if unknown or not self.features:
            raise DataError(f"answer recipe: unknown or no features {unknown}")
        # A manifest's recipe comes back from JSON with a list: keep the canonical order as a tuple.
        object.__setattr__(self, "features", tuple(n for n in ANSWER_FEATURE_NAMES if n in self.features))

    @property
    def columns(self) -> np.ndarray:
        return feature_columns(self.features)


@dataclass(frozen=True)
class AnswerExample:
    """One labelled answer: `good` 1 when the small answer was good enough, 0 when it was not.
    `group` (a task family, tenant or source) is recorded in the manifest's counts."""

    item: AnswerInput
    good: int
    group: str = "unknown"
    weight: float = 1.0


def build_inputs(
    embedder: Embedder,
    items: Sequence[AnswerInput],
    embeddings: bool,
    masked: Sequence[bool] | None = None,
    columns: np.ndarray | None = None,
    masked_samples: Sequence[bool] | None = None,
) -> np.ndarray:
    """The head's input matrix for `items` (embedding both prompts and answers with `embedder`)."""
    prompts = embedder.embed([item.prompt for item in items])
    answers = embedder.embed([item.answer for item in items])
    full = head_inputs(prompts, answers, items, masked, masked_samples)
    return select_inputs(full, embeddings, embedder.dim, columns)


def select_inputs(
    full: np.ndarray, embeddings: bool, dim: int, columns: np.ndarray | None = None
) -> np.ndarray:
    """Keep the recipe's columns of a full input matrix: the embeddings when it uses them, then the scalar
    features `columns` (positions in ANSWER_FEATURE_NAMES; None: the first 14, the v1 set)."""
    scalars = full[:, 2 * dim :][:, columns if columns is not None else feature_columns(DEFAULT_V1)]
    return np.hstack([full[:, : 2 * dim], scalars]) if embeddings else scalars


def mask_rows(count: int, recipe: AnswerRecipe) -> list[bool]:
    """Which training rows have their log-probabilities hidden (deterministic for the recipe's seed)."""
    rng = np.random.default_rng(recipe.seed)
    return list(rng.random(count) < recipe.mask_share)


def mask_sample_rows(count: int, recipe: AnswerRecipe) -> list[bool]:
    """Which training rows have their second sample hidden (none unless the recipe reads it)."""
    if not SAMPLE_FEATURES & set(recipe.features):
        return [False] * count
    rng = np.random.default_rng(recipe.seed + 1)
    return list(rng.random(count) < recipe.sample_mask_share)


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
    inputs = build_inputs(
        embedder,
        items,
        recipe.embeddings,
        mask_rows(len(items), recipe),
        recipe.columns,
        mask_sample_rows(len(items), recipe),
    )
    trainer = fit_head(inputs, good, weights, recipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    head_path = out_dir / HEAD_FILE
    export_head(trainer, inputs.shape[1], head_path)
    head_sha = sha256_file(head_path)
    from sklearn.metrics import roc_auc_score

    oof = trainer.oof_probability()
    manifest = Manifest(
        version=hashlib.sha256(head_sha.encode() + repr(recipe.features).encode()).hexdigest()[:12],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        embedder=embedder_ref(out_dir, embedder_dir, VARIANT_FILES[recipe.embedder]),
        head=HeadSpec(
            sha256=head_sha,
            kind=HEAD_KIND,
            calibration=f"platt ({recipe.calibration_folds}-fold out-of-fold)",
            features=list(recipe.features),
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
