"""Training a head end to end: soft labels, calibration, export, reload, quality on held-out rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifier.artifacts import read_manifest
from classifier.data import Example, read_examples
from classifier.embedding import Embedder
from classifier.evaluation import evaluate
from classifier.paths import SHIPPED_EMBEDDER
from classifier.scoring import Scorer
from classifier.training import HeadTrainer, Recipe, build_training_set, train_model
from tests.classifier import synthetic


def test_soft_labels_merge_rows_of_one_prompt() -> None:
    examples = [Example("p", 1, "a"), Example("p", 0, "a"), Example("p", 0, "a"), Example("q", 1, "b")]
    unbalanced = build_training_set(examples, "none")
    assert unbalanced.texts == ["p", "q"]
    assert unbalanced.need_large[0] == pytest.approx(2 / 3)
    assert list(unbalanced.weights) == [3.0, 1.0]
    balanced = build_training_set(examples, "equal")
    # Each source gets the same total weight.
    assert balanced.weights[0] == pytest.approx(balanced.weights[1])


def test_estimator_contract() -> None:
    trainer = HeadTrainer(Recipe(C=0.5))
    assert vars(trainer) == {"recipe": Recipe(C=0.5), "prior_head": None}
    with pytest.raises(RuntimeError, match="not fitted"):
        trainer.predict_proba(np.zeros((1, 3)))


def test_train_export_reload_and_generalise(tmp_path: Path) -> None:
    train_file = synthetic.write(tmp_path / "train.jsonl", synthetic.rows(300, seed=1))
    test_examples = read_examples([synthetic.write(tmp_path / "test.jsonl", synthetic.rows(200, seed=2))])
    examples = read_examples([train_file])
    embedder = Embedder.from_path(SHIPPED_EMBEDDER)
    texts = sorted({e.text for e in examples})
    manifest = train_model(
        examples,
        embedder.embed(texts),
        texts,
        tmp_path / "model",
        SHIPPED_EMBEDDER,
        recipe=Recipe(C=0.5),
        data_files=[train_file],
    )
    assert read_manifest(tmp_path / "model") == manifest
    assert manifest.training_data["rows"] == 300
    assert set(manifest.suggested_thresholds) == {"0.1", "0.3", "0.5"}
    assert manifest.metrics["out_of_fold"]["auc"] > 0.75

    scorer = Scorer.from_path(tmp_path / "model")
    scores = scorer.score([e.text for e in test_examples])
    report = evaluate(scores, test_examples)
    assert report.auc > 0.75 and report.apgr > 0.65
    # Calibration: with ~50% truly hard, the mean predicted probability is near the observed rate.
    observed = np.mean([1 - e.small_ok for e in test_examples])
    assert abs(float(scores.mean()) - observed) < 0.1


def test_shared_data_few_hundred_rows(tmp_path: Path, shared_data: Path) -> None:
    lines = (shared_data / "train.jsonl").read_text().splitlines()
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(lines[::100][:300]) + "\n")
    examples = read_examples([sample])
    embedder = Embedder.from_path(SHIPPED_EMBEDDER)
    texts = sorted({e.text for e in examples})
    manifest = train_model(examples, embedder.embed(texts), texts, tmp_path / "m", SHIPPED_EMBEDDER)
    assert Scorer.from_path(tmp_path / "m").version == manifest.version


def test_recipe_from_a_manifest_keeps_known_values_and_defaults_the_rest() -> None:
    from dataclasses import asdict, replace

    from classifier.training import Recipe

    custom = replace(Recipe(), C=0.5, balance="sqrt", long_text="head_tail", embedder="fp32", seed=3)
    assert Recipe.from_manifest(asdict(custom)) == custom
    older = {"C": 0.01, "balance": "none", "label": "small_failed", "calibration_folds": 5, "seed": 0}
    assert Recipe.from_manifest(older) == Recipe()  # written before long_text and embedder existed
    odd = {"C": -1, "balance": "weird", "embedder": "fp16", "calibration_folds": 1, "seed": True, "x": 1}
    assert Recipe.from_manifest(odd) == Recipe()
