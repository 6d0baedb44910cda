"""Training the head: soft labels, source balancing, logistic regression, Platt calibration, export."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from classifier.artifacts import HEAD_FILE, HeadSpec, Manifest, embedder_ref, write_manifest
from classifier.calibration import fit_platt, suggested_thresholds
from classifier.data import Example
from classifier.embedding import VARIANT_FILES, EmbedderVariant, LongText
from classifier.errors import DataError
from classifier.evaluation import evaluate
from classifier.export import sha256_file
from classifier.features import FEATURE_NAMES, FEATURES_VERSION
from classifier.scoring import head_inputs

Balance = Literal["none", "sqrt", "equal"]
Label = Literal["small_ok", "small_failed", "gain"]
Inputs = Literal["standardised", "embedding"]


@dataclass(frozen=True)
class Recipe:
    """How a head is trained. Chosen by leave-one-source-out validation (see benchmarks/loso.py).

    `C`: inverse L2 strength of the logistic regression. `balance`: per-source row weights
    (`equal` gives each source the same total weight). `label`: what the head learns to predict:
    `small_ok` is "the small model was worse than the large one"; `small_failed` is "the small model got a
    right/wrong task wrong" (graded rows fall back to `small_ok`). `small_failed` generalises better across
    sources, because "both wrong" prompts are hard prompts, not easy ones. `long_text`: how prompts past
    the embedder's 256-token window are embedded (classifier.embedding.Embedder); it is recorded in the
    manifest, and the scorer embeds the same way. `joined` (first and last 127 tokens in one window) beat
    `head_tail` (two windows, twice the work) on every held-out source with long prompts. `embedder`: the
    embedder file the head is trained on, recorded in the manifest and served by default: `int8`
    (smoothed dynamic int8, cosine to fp32 >= 0.99, about 1.4x faster) routes as well as `fp32`.
    `gain` (needs both scores) is the gain of sending the prompt large, (1 + large - small) / 2 on scores
    scaled to [0, 1]: what APGR rewards. `class_balance`: weight the two classes of the label equally.
    `prior`: weight of a prior model's logit (the champion's, at retrain time) added as an offset, so the
    fit learns a correction to it and the L2 penalty pulls toward its weights; 0 = no prior.
    `inputs`: what the logistic regression is fitted on. `standardised` (the shipped recipe): the embedding
    and the structural features, each column scaled to unit variance, so the L2 penalty treats them alike.
    `embedding`: the raw embedding alone (no scaling, structural features weighed 0), the plain model that
    learns best from a few hundred labels (benchmarks/learning_curve.py); no prior. Both export as the same
    scaler + linear layer: the raw fit is rewritten in the scaled coordinates.
    """

    C: float = 0.01
    balance: Balance = "none"
    label: Label = "small_failed"
    calibration_folds: int = 5
    seed: int = 0
    long_text: LongText = "joined"
    embedder: EmbedderVariant = "int8"
    class_balance: bool = False
    prior: float = 0.0
    inputs: Inputs = "standardised"

    @classmethod
    def from_manifest(cls, recorded: Mapping[str, object]) -> Recipe:
        """The recipe a manifest records (`asdict` of a Recipe); a field it lacks or holds a value this
        version does not know keeps its default (manifests written before the field existed)."""
        checks: dict[str, Callable[[object], bool]] = {
            "C": lambda v: _is_number(v) and float(v) > 0,  # type: ignore[arg-type]
            "balance": lambda v: v in get_args(Balance),
            "label": lambda v: v in get_args(Label),
            "calibration_folds": lambda v: _is_integer(v) and int(v) >= 2,  # type: ignore[call-overload]
            "seed": _is_integer,
            "long_text": lambda v: v in get_args(LongText),
            "embedder": lambda v: v in get_args(EmbedderVariant),
            "class_balance": lambda v: isinstance(v, bool),
            "prior": lambda v: _is_number(v) and float(v) >= 0,  # type: ignore[arg-type]
            "inputs": lambda v: v in get_args(Inputs),
        }
        kept: dict[str, Any] = {
            name: recorded[name] for name, valid in checks.items() if valid(recorded.get(name))
        }
        for name in ("C", "prior"):
            if name in kept:
                kept[name] = float(kept[name])
        return cls(**kept)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_integer(value) or isinstance(value, float)


@dataclass(frozen=True)
class TrainingSet:
    """One row per distinct prompt: the soft training target, the soft P(small_ok == 0), and total weight."""

    texts: list[str]
    need_large: np.ndarray  # [n] in [0, 1]: the recipe's label, what the head ranks by
    fell_short: np.ndarray  # [n] in [0, 1]: share of rows with small_ok == 0, what scores are calibrated to
    weights: np.ndarray  # [n] > 0
    sources: list[str]


def build_training_set(
    examples: Sequence[Example], balance: Balance, label: Label = "small_ok"
) -> TrainingSet:
    """Merge the rows of each prompt (several model pairs) into a soft label, weighting rows by source."""
    per_source: dict[str, int] = defaultdict(int)
    for example in examples:
        per_source[example.source] += 1
    mean_size = len(examples) / len(per_source)

    def source_weight(source: str) -> float:
        if balance == "equal":
            return mean_size / per_source[source]
        if balance == "sqrt":
            return float(np.sqrt(mean_size / per_source[source]))
        return 1.0

    need: dict[str, float] = defaultdict(float)
    short: dict[str, float] = defaultdict(float)
    weight: dict[str, float] = defaultdict(float)
    source_of: dict[str, str] = {}
    for example in examples:
        w = example.weight * source_weight(example.source)
        need[example.text] += w * label_value(example, label)
        short[example.text] += w * (1 - example.small_ok)
        weight[example.text] += w
        source_of.setdefault(example.text, example.source)
    texts = list(weight)
    weights = np.array([weight[t] for t in texts])
    return TrainingSet(
        texts=texts,
        need_large=np.array([need[t] for t in texts]) / weights,
        fell_short=np.array([short[t] for t in texts]) / weights,
        weights=weights,
        sources=[source_of[t] for t in texts],
    )


def label_value(example: Example, label: Label) -> float:
    """The example's target in [0, 1] under `label` (1 = send it large)."""
    if label == "small_failed":
        return float(example.small_failed)
    if label == "gain":
        return example.gain
    return float(1 - example.small_ok)


# A linear head in the raw input space: (weights [d], intercept); its logit is inputs @ weights + intercept.
LinearHead = tuple[np.ndarray, float]


class HeadTrainer:
    """scikit-learn estimator: StandardScaler + LogisticRegression on soft labels, then Platt-calibrated.

    `fit(X, target, weights, calibration_target)` returns self. The logistic regression learns to rank by
    `target`; Platt scaling, fitted on out-of-fold decisions, maps its output to a probability of
    `calibration_target` (default: `target`), so the ranking label and the served probability can differ.
    `prior_head` (used when `recipe.prior` > 0): a linear head whose logit, times `recipe.prior`, is the
    offset the fit starts from; it is folded into the fitted weights, so the export stays one linear layer.
    """

    def __init__(self, recipe: Recipe = Recipe(), prior_head: LinearHead | None = None):
        self.recipe = recipe
        self.prior_head = prior_head

    def fit(
        self,
        inputs: np.ndarray,
        need_large: np.ndarray,
        weights: np.ndarray,
        calibration_target: np.ndarray | None = None,
    ) -> HeadTrainer:
        from sklearn.model_selection import StratifiedKFold

        decision = np.zeros(len(inputs))
        folds = StratifiedKFold(
            n_splits=min(self.recipe.calibration_folds, _smallest_class(need_large)),
            shuffle=True,
            random_state=self.recipe.seed,
        )
        # Out-of-fold decisions make the Platt fit honest: no prompt is calibrated on a model that saw it.
        for train_index, test_index in folds.split(inputs, need_large >= 0.5):
            model = self._fit_one(inputs[train_index], need_large[train_index], weights[train_index])
            decision[test_index] = model.decision_function(inputs[test_index])
        target = need_large if calibration_target is None else calibration_target
        hard, soft_weights, expanded = _expand(target, weights, decision)
        self.platt_ = fit_platt(expanded, hard, soft_weights)
        self.pipeline_ = self._fit_one(inputs, need_large, weights)
        a, b = self.platt_
        logistic = self.pipeline_.named_steps["logisticregression"]
        # sigmoid(a * (w.x + c) + b) == sigmoid((a w).x + (a c + b)): calibration folds into the weights.
        logistic.coef_ = logistic.coef_ * a
        logistic.intercept_ = logistic.intercept_ * a + b
        self.oof_decision_ = decision
        return self

    def _fit_one(self, inputs: np.ndarray, need_large: np.ndarray, weights: np.ndarray) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        hard, soft_weights, expanded = _expand(need_large, weights, inputs)
        if self.recipe.class_balance:
            soft_weights = _balanced(hard, soft_weights)
        pipeline = make_pipeline(
            StandardScaler(),
            LogisticRegression(C=self.recipe.C, max_iter=2000, random_state=self.recipe.seed),
        )
        if self.recipe.inputs == "embedding":
            return _fit_raw_embedding(pipeline, expanded, hard, soft_weights)
        if self.prior_head is None or self.recipe.prior <= 0:
            pipeline.fit(expanded, hard, logisticregression__sample_weight=soft_weights)
            return pipeline
        scaler, logistic = pipeline.named_steps.values()
        scaler.fit(expanded)
        prior_weights, prior_intercept = self.prior_head
        offset = self.recipe.prior * (expanded @ prior_weights + prior_intercept)
        coef, intercept = fit_logistic_offset(
            scaler.transform(expanded), hard, soft_weights, offset, self.recipe.C
        )
        # prior * (w.x + c) with x = mean + scale * z is (prior * w * scale).z + prior * (w.mean + c).
        logistic.coef_ = (coef + self.recipe.prior * prior_weights * scaler.scale_)[None, :]
        logistic.intercept_ = np.array(
            [intercept + self.recipe.prior * (prior_weights @ scaler.mean_ + prior_intercept)]
        )
        logistic.classes_ = np.array([0.0, 1.0])
        logistic.n_features_in_ = expanded.shape[1]
        return pipeline

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        """[n, 2] calibrated probabilities; column 1 = P(need large)."""
        if not hasattr(self, "pipeline_"):
            raise RuntimeError("HeadTrainer is not fitted")
        return self.pipeline_.predict_proba(inputs)

    def oof_probability(self) -> np.ndarray:
        """Calibrated out-of-fold P(need large) for the training rows (honest in-sample estimate)."""
        a, b = self.platt_
        return 1.0 / (1.0 + np.exp(-(a * self.oof_decision_ + b)))


def _expand(
    need_large: np.ndarray, weights: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Any]:
    """A soft label p becomes two weighted rows: class 1 with weight w*p, class 0 with weight w*(1-p)."""
    positive = need_large > 0
    negative = need_large < 1
    hard = np.concatenate([np.ones(positive.sum()), np.zeros(negative.sum())])
    soft = np.concatenate(
        [weights[positive] * need_large[positive], weights[negative] * (1 - need_large[negative])]
    )
    return hard, soft, np.concatenate([values[positive], values[negative]])


def _balanced(hard: np.ndarray, soft_weights: np.ndarray) -> np.ndarray:
    """Rescale the weights so that both classes carry half of the total."""
    total = soft_weights.sum()
    positive = soft_weights[hard == 1].sum()
    if positive <= 0 or positive >= total:
        return soft_weights
    return np.where(hard == 1, total / (2 * positive), total / (2 * (total - positive))) * soft_weights


def _fit_raw_embedding(pipeline: Any, inputs: np.ndarray, hard: np.ndarray, weights: np.ndarray) -> Any:
    """Fit the pipeline's logistic regression on the raw embedding columns of `inputs` (the structural
    features weighed 0), then rewrite it for the pipeline's scaler: w.x + c with x = mean + scale * z is
    (w * scale).z + (w.mean + c)."""
    scaler, logistic = pipeline.named_steps.values()
    scaler.fit(inputs)
    embedding = inputs.shape[1] - len(FEATURE_NAMES)
    logistic.fit(inputs[:, :embedding], hard, sample_weight=weights)
    coef = np.zeros(inputs.shape[1])
    coef[:embedding] = logistic.coef_[0]
    logistic.coef_ = (coef * scaler.scale_)[None, :]
    logistic.intercept_ = np.array([logistic.intercept_[0] + coef @ scaler.mean_])
    logistic.n_features_in_ = inputs.shape[1]
    return pipeline


def fit_logistic_offset(
    inputs: np.ndarray, hard: np.ndarray, weights: np.ndarray, offset: np.ndarray, C: float
) -> tuple[np.ndarray, float]:
    """(coef, intercept) minimising 1/2 |coef|^2 + C * sum(weights * log loss of sigmoid(inputs @ coef +
    intercept + offset)): scikit-learn's L2 logistic regression with a fixed per-row offset."""
    from scipy.optimize import minimize
    from scipy.special import expit, log1p

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = inputs @ theta[:-1] + theta[-1] + offset
        # log(1 + e^z) - y z, computed without overflow.
        loss = np.maximum(z, 0) + log1p(np.exp(-np.abs(z))) - hard * z
        residual = C * weights * (expit(z) - hard)
        gradient = np.append(theta[:-1] + inputs.T @ residual, residual.sum())
        return float(0.5 * theta[:-1] @ theta[:-1] + C * weights @ loss), gradient

    start = np.zeros(inputs.shape[1] + 1)
    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return result.x[:-1], float(result.x[-1])


def _smallest_class(need_large: np.ndarray) -> int:
    hard = need_large >= 0.5
    smallest = int(min(hard.sum(), (~hard).sum()))
    if smallest < 2:
        raise DataError("too few examples of one class to train (need at least 2 prompts per class)")
    return smallest


def export_head(trainer: HeadTrainer, n_inputs: int, path: Path) -> None:
    """Write the fitted head to ONNX with skl2onnx (probabilities as a plain [n, 2] tensor)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    logistic = trainer.pipeline_.named_steps["logisticregression"]
    onnx_model = convert_sklearn(
        trainer.pipeline_,
        # A fixed graph name: skl2onnx's default is a fresh uuid4, which made the bytes (and so the
        # content-hash version) of two trainings on the same data differ.
        name="rightsize_head",
        initial_types=[("features", FloatTensorType([None, n_inputs]))],
        options={id(logistic): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path.write_bytes(onnx_model.SerializeToString())


def train_model(
    examples: Sequence[Example],
    embeddings: np.ndarray,
    texts: Sequence[str],
    out_dir: Path,
    embedder_dir: Path,
    *,
    recipe: Recipe = Recipe(),
    data_files: Sequence[Path] = (),
    calibration_scores_texts: tuple[np.ndarray, Sequence[str]] | None = None,
    metrics: dict[str, object] | None = None,
    prior_head: LinearHead | None = None,
) -> Manifest:
    """Fit, export and write a complete model directory; `embeddings[i]` is the embedding of `texts[i]`,
    made with `recipe.long_text`. `prior_head` is the model `recipe.prior` weighs (see HeadTrainer)."""
    training = build_training_set(examples, recipe.balance, recipe.label)
    row_of = {text: i for i, text in enumerate(texts)}
    missing = [t for t in training.texts if t not in row_of]
    if missing:
        raise DataError(f"{len(missing)} training prompts have no embedding")
    inputs = head_inputs(embeddings[[row_of[t] for t in training.texts]], training.texts)
    if recipe.prior > 0 and prior_head is None:
        raise DataError("the recipe weighs a prior model (prior > 0) but none was given")
    trainer = HeadTrainer(recipe, prior_head).fit(
        inputs, training.need_large, training.weights, training.fell_short
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    head_path = out_dir / HEAD_FILE
    export_head(trainer, inputs.shape[1], head_path)
    if calibration_scores_texts is None:
        reference = trainer.oof_probability()
    else:
        cal_embeddings, cal_texts = calibration_scores_texts
        reference = trainer.predict_proba(head_inputs(cal_embeddings, cal_texts))[:, 1]
    head_sha = sha256_file(head_path)
    oof_of = dict(zip(training.texts, trainer.oof_probability(), strict=True))
    oof = evaluate(np.array([oof_of[e.text] for e in examples]), examples)
    figures = {
        "out_of_fold": {
            "rows": oof.rows,
            "auc": round(oof.auc, 4),
            "apgr": round(oof.apgr, 4),
            "cpt50": round(oof.cpt50, 4),
            "cpt80": round(oof.cpt80, 4),
            "quality_basis": oof.quality_basis,
        }
    }
    manifest = Manifest(
        version=hashlib.sha256(head_sha.encode() + FEATURE_NAMES.__repr__().encode()).hexdigest()[:12],
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        embedder=embedder_ref(out_dir, embedder_dir, VARIANT_FILES[recipe.embedder]),
        head=HeadSpec(
            sha256=head_sha,
            kind="standard_scaler+logistic_regression",
            calibration=f"platt ({recipe.calibration_folds}-fold out-of-fold)",
            features=list(FEATURE_NAMES),
            features_version=FEATURES_VERSION,
            inputs=int(inputs.shape[1]),
        ),
        training_data=_data_summary(examples, data_files, training),
        recipe=asdict(recipe),
        metrics={**figures, **(metrics or {})},
        suggested_thresholds=suggested_thresholds(reference),
        long_text=recipe.long_text,
    )
    write_manifest(out_dir, manifest)
    return manifest


def _data_summary(
    examples: Sequence[Example], files: Sequence[Path], training: TrainingSet
) -> dict[str, object]:
    digest = hashlib.sha256()
    for path in files:
        digest.update(sha256_file(path).encode())
    if not files:
        for example in examples:
            digest.update(f"{example.small_ok}\t{example.source}\t{example.text}\n".encode())
    per_source: dict[str, int] = defaultdict(int)
    for example in examples:
        per_source[example.source] += 1
    return {
        "sha256": digest.hexdigest(),
        "files": [str(p) for p in files],
        "rows": len(examples),
        "prompts": len(training.texts),
        "rows_by_source": dict(sorted(per_source.items())),
    }
