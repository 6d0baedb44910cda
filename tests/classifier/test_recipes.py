"""Score scales, the gain label, the champion prior and recipe selection by cross-validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.active import diverse_order, typical_order, uncertainty_order
from classifier.data import Example, read_examples
from classifier.errors import DataError
from classifier.evaluation import evaluate, evaluate_by_scale
from classifier.paths import SHIPPED_EMBEDDER
from classifier.recipes import (
    CandidateScore,
    choose,
    default_rule,
    labels_for,
    linear_head,
    select_recipe,
)
from classifier.scoring import head_inputs
from classifier.training import HeadTrainer, Recipe, train_model


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_scores_without_a_scale_get_one_inferred_per_source_and_it_is_said(tmp_path: Path) -> None:
    rows = [
        {"prompt": f"p{i}", "small_ok": i % 2, "small_score": i % 2, "large_score": 1, "source": "binary"}
        for i in range(4)
    ] + [
        {"prompt": f"g{i}", "small_ok": 1, "small_score": 3 + i, "large_score": 8, "source": "graded"}
        for i in range(4)
    ]
    notes: list[str] = []
    examples = read_examples([write_rows(tmp_path / "d.jsonl", rows)], notes=notes)
    assert {e.source: e.scale for e in examples} == {"binary": "correct01", "graded": "judge1-10"}
    assert any("inferred correct01" in n for n in notes) and any("inferred judge1-10" in n for n in notes)
    # The old fallback read a wrong binary answer as "small_ok" whenever the large one was wrong too.
    assert [e.small_failed for e in examples[:4]] == [1, 0, 1, 0]


def test_scores_on_no_known_scale_and_unknown_scales_are_errors(tmp_path: Path) -> None:
    odd = [{"prompt": "a", "small_ok": 0, "small_score": 40, "large_score": 90, "source": "s"}]
    with pytest.raises(DataError, match='add "scale"'):
        read_examples([write_rows(tmp_path / "a.jsonl", odd + [{"prompt": "b", "small_ok": 1}])])
    bad = [{"prompt": "a", "small_ok": 0, "scale": "stars"}, {"prompt": "b", "small_ok": 1}]
    with pytest.raises(DataError, match="unknown `scale`"):
        read_examples([write_rows(tmp_path / "b.jsonl", bad)])


def test_mixed_scales_are_scaled_to_unit_range_not_averaged_raw() -> None:
    examples = [
        Example("a", 0, small_score=0.0, large_score=1.0, scale="correct01"),
        Example("b", 1, small_score=1.0, large_score=1.0, scale="correct01"),
        Example("c", 0, small_score=1.0, large_score=10.0, scale="judge1-10"),
        Example("d", 1, small_score=10.0, large_score=10.0, scale="judge1-10"),
    ]
    report = evaluate(np.array([0.9, 0.1, 0.8, 0.2]), examples)
    assert report.quality_small == pytest.approx(0.5) and report.quality_large == pytest.approx(1.0)
    assert "per scale" in report.quality_basis
    parts = evaluate_by_scale(np.array([0.9, 0.1, 0.8, 0.2]), examples)
    assert set(parts) == {"correct01", "judge1-10"} and all(p.rows == 2 for p in parts.values())


def test_gain_label_rewards_only_prompts_the_large_model_fixes() -> None:
    rows = [(0, 1), (0, 0), (1, 1), (1, 0)]
    examples = [Example(f"p{i}", int(s >= large), small_score=s, large_score=large, scale="correct01")
                for i, (s, large) in enumerate(rows)]  # fmt: skip
    assert [e.gain for e in examples] == [1.0, 0.5, 0.5, 0.0]
    assert labels_for(examples) == ["small_failed", "small_ok", "gain"]
    assert labels_for([Example("x", 1), Example("y", 0)]) == ["small_failed"]  # identical without scores


def synthetic(n: int, seed: int, dim: int = 384) -> tuple[list[Example], np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"prompt {seed}-{i}" for i in range(n)]
    hard = vectors[:, 0] + 0.3 * rng.normal(size=n) > 0
    examples = [Example(t, int(not h), source="team") for t, h in zip(texts, hard, strict=True)]
    return examples, vectors, texts


def test_the_prior_is_folded_into_one_linear_head_that_the_probe_reads_back(tmp_path: Path) -> None:
    examples, vectors, texts = synthetic(120, seed=1)
    inputs = head_inputs(vectors, texts)
    champion = train_model(examples, vectors, texts, tmp_path / "champion", SHIPPED_EMBEDDER)
    weights, intercept = linear_head(tmp_path / "champion", inputs.shape[1])
    trainer = HeadTrainer(Recipe.from_manifest(champion.recipe)).fit(
        inputs, 1.0 - np.array([e.small_ok for e in examples]), np.ones(len(texts))
    )
    reference = trainer.predict_proba(inputs)[:, 1]
    assert np.allclose(1 / (1 + np.exp(-(inputs @ weights + intercept))), reference, atol=1e-4)
    # A strongly regularised fit on top of the prior stays at the prior: the offset is its starting point.
    recipe = Recipe(C=1e-6, prior=1.0)
    model = HeadTrainer(recipe, (weights, intercept))._fit_one(
        inputs, 1.0 - np.array([e.small_ok for e in examples]), np.ones(len(texts))
    )
    assert np.corrcoef(model.decision_function(inputs), inputs @ weights)[0, 1] > 0.999


def test_the_plain_model_fits_the_raw_embedding_and_exports_as_one_linear_head(tmp_path: Path) -> None:
    """Recipe.inputs "embedding": scikit-learn's logistic regression on the unscaled embedding alone gives
    the same ranking as the exported head (scaler + linear layer), and the structural features weigh 0."""
    from sklearn.linear_model import LogisticRegression

    from classifier.features import FEATURE_NAMES

    examples, vectors, texts = synthetic(120, seed=3)
    inputs = head_inputs(vectors, texts)
    need_large = 1.0 - np.array([e.small_ok for e in examples])
    recipe = Recipe(C=1.0, class_balance=True, label="small_ok", inputs="embedding")
    manifest = train_model(examples, vectors, texts, tmp_path / "plain", SHIPPED_EMBEDDER, recipe=recipe)
    assert Recipe.from_manifest(manifest.recipe) == recipe  # recorded, and read back
    weights, intercept = linear_head(tmp_path / "plain", inputs.shape[1])
    assert np.all(weights[-len(FEATURE_NAMES) :] == 0)
    plain = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(vectors, need_large)
    assert np.corrcoef(inputs @ weights + intercept, plain.decision_function(vectors))[0, 1] > 0.999


def test_selection_cross_validates_every_candidate_and_records_the_choice() -> None:
    examples, vectors, texts = synthetic(150, seed=2, dim=16)
    selection = select_recipe(examples, head_inputs(vectors, texts), texts, Recipe(), cs=(0.01, 1.0))
    # One distinct label: two C, with and without class balance, then the plain model.
    assert len(selection.scores) == 1 * 2 * 2 + 1
    assert sum(s.recipe.inputs == "embedding" for s in selection.scores) == 1
    assert selection.repeats == 3 and selection.default is not None
    assert selection.chosen in (selection.scores[0].recipe, selection.default.recipe)
    assert selection.scores[0].apgr > 0.6  # the signal is in the first coordinate: it is found
    summary = selection.summary()
    assert summary["chosen"]["C"] in (0.01, 1.0) and len(summary["candidates"]) == 5  # type: ignore[index]
    # No champion to start from (rightsize train): one standard error, and the manifest says so.
    assert selection.rule == "anchored_auc" and str(summary["method"]).endswith("rule anchored_auc")


def test_diverse_order_spreads_and_uncertainty_starts_at_the_threshold() -> None:
    clusters = np.array([[1.0, 0, 0]] * 5 + [[0, 1.0, 0]] * 5 + [[0, 0, 1.0]])
    first_three = set(diverse_order(clusters, count=3).tolist())
    assert {min(first_three) < 5, any(5 <= i < 10 for i in first_three), 10 in first_three} == {True}
    away = diverse_order(clusters, labelled=np.array([[1.0, 0, 0], [0, 1.0, 0]]), count=1)
    assert away.tolist() == [10]
    assert uncertainty_order(np.array([0.1, 0.52, 0.9]), np.array([0.5, 0.5, 0.5])).tolist() == [1, 0, 2]


def test_typical_order_takes_the_centre_of_the_largest_cluster_first_and_skips_labelled_ones() -> None:
    rng = np.random.default_rng(0)

    def cluster(centre: list[float], n: int) -> np.ndarray:
        points = np.array(centre) + rng.normal(0, 0.05, (n, 3))
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    big, small, outlier = cluster([1.0, 0, 0], 30), cluster([0, 1.0, 0], 10), cluster([0, 0, 1.0], 1)
    vectors = np.vstack([big, small, outlier])
    order = typical_order(vectors, count=3)
    assert sorted(order.tolist()) == list(range(len(vectors)))  # every prompt, each once
    centre = big.mean(axis=0) / np.linalg.norm(big.mean(axis=0))
    assert order[0] < 30 and vectors[order[0]] @ centre > np.median(big @ centre)  # typical, not an edge
    assert 30 <= order[1] < 40 and order[2] == 40  # then the next largest cluster, then the outlier
    # The big cluster is labelled already: its centre comes after the unexplored clusters.
    away = typical_order(vectors, labelled=big[:1], count=3)
    assert 30 <= away[0] < 40 and away[1] == 40


def test_with_a_prior_selection_keeps_the_champion_unless_the_labels_show_better() -> None:
    """The first candidate is the champion as it is; `one_se` leaves it for a candidate that beats it by more
    than one standard error of the paired fold differences (a wrong champion), and below
    MIN_PROMPTS_TO_MOVE prompts it is kept whatever the folds say."""
    from classifier.recipes import KEEP_C, MIN_PROMPTS_TO_MOVE

    examples, vectors, texts = synthetic(150, seed=5, dim=16)
    inputs = head_inputs(vectors, texts)
    truth = np.zeros(inputs.shape[1])
    truth[0] = 20.0  # need large (small_ok = 0) where the first coordinate is large
    wrong = (-truth, 0.0)
    moved = select_recipe(examples, inputs, texts, Recipe(), wrong, cs=(0.01, 1.0))
    assert moved.default is not None and moved.default.recipe.C == KEEP_C and moved.default.recipe.prior == 1
    assert moved.chosen.C != KEEP_C and moved.scores[0].apgr > moved.default.apgr + 0.1
    assert "rule anchored_auc_2se" in str(moved.summary()["method"])
    few = MIN_PROMPTS_TO_MOVE - 10
    kept = select_recipe(examples[:few], inputs[:few], texts[:few], Recipe(), wrong, cs=(0.01, 1.0))
    assert kept.chosen.C == KEEP_C and kept.scores[0].apgr > kept.default.apgr  # type: ignore[union-attr]


def test_anchored_takes_the_plain_model_on_a_mean_lead_and_others_only_past_one_standard_error() -> None:
    """`anchored` starts from the better of the champion and the plain model by mean (a lead too small
    for `one_se`), and a third candidate must still beat that start by more than one standard error."""
    from classifier.recipes import KEEP_C

    def scored(recipe: Recipe, folds: tuple[float, ...], auc: float = 0.5) -> CandidateScore:
        return CandidateScore(recipe, float(np.mean(folds)), auc, float(np.std(folds)), folds)

    champion = scored(Recipe(prior=1.0, C=KEEP_C), (0.50, 0.56, 0.53))
    plain = scored(
        Recipe(label="small_ok", C=1.0, class_balance=True, inputs="embedding"), (0.58, 0.50, 0.57)
    )
    close = scored(Recipe(label="gain", C=0.1), (0.60, 0.49, 0.57))  # +0.003 over plain, noisy
    ranked = [close, plain, champion]
    assert choose(ranked, champion, "one_se") is champion  # plain's +0.02 is within one SE
    assert choose(ranked, champion, "anchored") is plain
    assert choose(ranked, champion, "best") is close
    worse_plain = scored(plain.recipe, (0.45, 0.50, 0.52))
    assert choose([champion, worse_plain], champion, "anchored") is champion
    clear = scored(Recipe(label="gain", C=0.1), (0.70, 0.66, 0.71))
    assert choose([clear, plain, champion], champion, "anchored") is clear
    # anchored_auc (the default) compares the two by AUC: a plain model behind on APGR but ahead on AUC
    ranks_better = scored(plain.recipe, (0.47, 0.58, 0.50), auc=0.6)  # APGR -0.013, within one SE
    assert choose([champion, ranks_better], champion, "anchored_auc") is ranks_better
    assert choose([champion, plain], champion, "anchored_auc") is champion  # equal AUC: no lead
    # anchor_only stops at that comparison: even a clear third candidate is not taken
    assert choose([clear, ranks_better, champion], champion, "anchor_only") is ranks_better
    assert choose([clear, plain, champion], champion, "anchor_only") is champion


def test_the_default_rule_needs_two_standard_errors_to_leave_the_anchor() -> None:
    """`anchored_auc_2se` (the default from a champion): a candidate ahead of the start by between one and
    two standard errors of the paired fold differences moves `anchored_auc`, not the default; a clear lead
    moves both."""
    from classifier.recipes import KEEP_C

    def scored(recipe: Recipe, folds: tuple[float, ...]) -> CandidateScore:
        return CandidateScore(recipe, float(np.mean(folds)), 0.5, float(np.std(folds)), folds)

    champion = scored(Recipe(prior=1.0, C=KEEP_C), (0.50, 0.56, 0.53))
    # differences 0.10, -0.02, 0.06: mean 0.047, one SE 0.035, two 0.071
    between = scored(Recipe(label="gain", C=0.1), (0.60, 0.54, 0.59))
    assert choose([between, champion], champion, "anchored_auc") is between
    assert choose([between, champion], champion, "anchored_auc_2se") is champion
    clear = scored(Recipe(label="gain", C=0.1), (0.70, 0.66, 0.71))
    assert choose([clear, champion], champion, "anchored_auc_2se") is clear
    # The default when retraining a champion; training from nothing but a recipe keeps one SE.
    assert (default_rule(from_champion=True), default_rule(from_champion=False)) == (
        "anchored_auc_2se",
        "anchored_auc",
    )
