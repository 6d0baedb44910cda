"""The answer verifiers: form checks, confidence features, the answer head's fit/export/load round trip."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import classifier.answer as answer_api
from classifier.answer import (
    ANSWER_FEATURE_NAMES,
    AnswerExample,
    AnswerInput,
    AnswerRecipe,
    AnswerScorer,
    FormConfig,
    TokenLogprob,
    confidence_features,
    form_verdict,
    parse_openai_logprobs,
    train_answer_head,
)
from classifier.answer.inputs import COSINE_FEATURE
from classifier.answer.training import build_inputs, fit_head, mask_rows
from classifier.embedding import Embedder
from classifier.errors import DataError, ModelLoadError
from classifier.paths import DEFAULT_MODEL_DIR, SHIPPED_EMBEDDER, SHIPPED_MODELS


def test_public_api_is_what_all_exports() -> None:
    assert set(answer_api.__all__) == {name for name in dir(answer_api) if not name.startswith("_")} - {
        "confidence",
        "consistency",
        "form",
        "inputs",
        "scorer",
        "training",
    }


@pytest.mark.parametrize(
    ("answer", "kwargs", "reason"),
    [
        ("   \n", {}, "form:empty"),
        ('{"a": 1', {"schema_valid": False}, "form:schema"),
        ("The answer is", {"finish_reason": "length", "completion_tokens": 48}, "form:truncated"),
        ("I'm sorry, but I can't help with that.", {}, "form:refusal"),
        ("As an AI language model, I cannot browse.", {}, "form:refusal"),
        ("the answer is five " * 8, {}, "form:repetition"),
    ],
)
def test_each_form_check_fails_its_case(answer: str, kwargs: dict[str, object], reason: str) -> None:
    verdict = form_verdict(answer, **kwargs)  # type: ignore[arg-type]
    assert not verdict.ok and verdict.reason == reason


def test_good_answers_pass_the_form_checks() -> None:
    assert form_verdict("Paris").ok
    assert form_verdict("He said: I'm sorry I was late.").ok  # a refusal phrase, but not at the start
    varied = " ".join(f"word{i}" for i in range(300))
    assert form_verdict(varied, finish_reason="length", completion_tokens=300).ok  # cut off, but long enough
    assert form_verdict('{"a": 1}', schema_valid=True, finish_reason="stop").ok


def test_form_checks_can_be_switched_off() -> None:
    off = FormConfig(empty=False, schema=False, truncation=False, refusal=False, repetition=False)
    for answer in ("", "I'm sorry, I cannot.", "na na na na " * 10):
        assert form_verdict(answer, schema_valid=False, finish_reason="length", config=off).ok


def test_truncation_uses_words_when_tokens_are_unknown() -> None:
    verdict = form_verdict("one two three", finish_reason="length", config=FormConfig(truncated_min_tokens=4))
    assert verdict.reason == "form:truncated" and verdict.value == 3.0
    assert form_verdict(
        "one two three four", finish_reason="length", config=FormConfig(truncated_min_tokens=4)
    ).ok


def test_confidence_features_values() -> None:
    features = confidence_features(
        [TokenLogprob(-0.1, -3.0), TokenLogprob(-1.0, -1.5), TokenLogprob(-0.2, None)]
    )
    assert features is not None
    assert features.mean_logprob == pytest.approx((-0.1 - 1.0 - 0.2) / 3)
    assert features.min_logprob == pytest.approx(-1.0)
    assert features.mean_margin == pytest.approx((2.9 + 0.5 + 20.0) / 3)  # no second: the capped margin
    assert features.low_confidence_share == pytest.approx(1 / 3)  # only exp(-1.0) < 0.5
    assert features.score == pytest.approx(math.exp(features.mean_logprob))
    assert features.tokens == 3


def test_confidence_is_none_without_logprobs_and_clamps_infinities() -> None:
    assert confidence_features(None) is None
    assert confidence_features([]) is None
    features = confidence_features([TokenLogprob(float("-inf"), -9999.0)])
    assert features is not None and features.min_logprob == -20.0 and features.mean_margin == 0.0


def test_parse_openai_logprobs_from_dicts_and_objects() -> None:
    content = [
        {
            "token": "Par",
            "logprob": -0.1,
            "top_logprobs": [{"token": "Par", "logprob": -0.1}, {"token": "L", "logprob": -2.5}],
        },
        {"token": "is", "logprob": -0.3, "top_logprobs": [{"token": "is", "logprob": -0.3}]},
    ]
    assert parse_openai_logprobs(content) == (TokenLogprob(-0.1, -2.5), TokenLogprob(-0.3, None))
    objects = [
        SimpleNamespace(token="a", logprob=-0.5, top_logprobs=[SimpleNamespace(token="b", logprob=-0.9)])
    ]
    assert parse_openai_logprobs(objects) == (TokenLogprob(-0.5, -0.9),)
    assert parse_openai_logprobs(None) is None
    assert parse_openai_logprobs([]) is None
    assert parse_openai_logprobs([{"token": "a", "logprob": None}]) is None


def _synthetic(group: str, count: int, seed: int) -> list[AnswerExample]:
    """Answers whose correctness shows in their token confidence, with group-specific prompts."""
    rng = np.random.default_rng(seed)
    examples = []
    for index in range(count):
        good = int(index % 2 == 0)
        centre = -0.05 if good else -1.6
        tokens = tuple(
            TokenLogprob(float(min(0.0, rng.normal(centre, 0.3))), float(rng.normal(centre - 2.5, 0.5)))
            for _ in range(int(rng.integers(2, 8)))
        )
        prompt = f"[{group}] question number {index}: what is item {rng.integers(1000)}?"
        item = AnswerInput(prompt, f"answer {rng.integers(1000)}", "stop", len(tokens), tokens)
        examples.append(AnswerExample(item, good, group))
    return examples


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.from_path(SHIPPED_EMBEDDER, variant="model.int8.onnx", threads=1, long_text="joined")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[Path, list[AnswerExample]]:
    out = tmp_path_factory.mktemp("verifier")
    examples = _synthetic("arithmetic", 60, 1)
    train_answer_head(examples, embedder, SHIPPED_EMBEDDER, out, recipe=AnswerRecipe(calibration_folds=3))
    return out, examples


def test_onnx_scores_equal_sklearn_and_manifest_is_complete(
    trained: tuple[Path, list[AnswerExample]], embedder: Embedder
) -> None:
    out, examples = trained
    recipe = AnswerRecipe(calibration_folds=3)
    items = [e.item for e in examples]
    good = np.array([e.good for e in examples], dtype=np.float64)
    inputs = build_inputs(embedder, items, recipe.embeddings, mask_rows(len(items), recipe), recipe.columns)
    trainer = fit_head(inputs, good, np.ones(len(items)), recipe)
    expected = trainer.predict_proba(
        build_inputs(embedder, items, recipe.embeddings, columns=recipe.columns)
    )[:, 1]
    scorer = AnswerScorer.from_path(out, embedder=embedder)
    assert np.allclose(scorer.score(items), expected, atol=1e-5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["head"]["features"] == list(recipe.features)
    assert set(recipe.features) <= set(ANSWER_FEATURE_NAMES)
    assert manifest["head"]["inputs"] == len(recipe.features)  # the default recipe: no embeddings
    assert manifest["training_data"]["rows_by_group"] == {"arithmetic": 60}
    assert scorer.version == manifest["version"]


def test_a_head_with_embeddings_round_trips(embedder: Embedder, tmp_path: Path) -> None:
    examples = _synthetic("date", 30, 4)
    recipe = AnswerRecipe(embeddings=True, calibration_folds=2)
    train_answer_head(examples, embedder, SHIPPED_EMBEDDER, tmp_path / "m", recipe=recipe)
    items = [e.item for e in examples]
    good = np.array([e.good for e in examples], dtype=np.float64)
    trainer = fit_head(
        build_inputs(embedder, items, True, mask_rows(30, recipe), recipe.columns), good, np.ones(30), recipe
    )
    scorer = AnswerScorer.from_path(tmp_path / "m", embedder=embedder)
    assert scorer.manifest.head.inputs == 2 * 384 + len(recipe.features)
    assert np.allclose(
        scorer.score(items),
        trainer.predict_proba(build_inputs(embedder, items, True, columns=recipe.columns))[:, 1],
        atol=1e-5,
    )


def test_held_out_group_is_ranked_by_confidence(
    trained: tuple[Path, list[AnswerExample]], embedder: Embedder
) -> None:
    from sklearn.metrics import roc_auc_score

    out, _ = trained
    scorer = AnswerScorer.from_path(out, embedder=embedder)
    held_out = _synthetic("geography", 40, 2)
    scores = scorer.score([e.item for e in held_out])
    assert roc_auc_score([e.good for e in held_out], scores) > 0.9
    assert ((scores >= 0) & (scores <= 1)).all()


def test_missing_logprobs_and_reused_prompt_embedding(
    trained: tuple[Path, list[AnswerExample]], embedder: Embedder
) -> None:
    out, examples = trained
    scorer = AnswerScorer.from_path(out, embedder=embedder)
    item = examples[0].item
    bare = AnswerInput(item.prompt, item.answer, "stop")
    value = scorer.score_one(bare)
    assert 0.0 <= value <= 1.0 and value != pytest.approx(scorer.score_one(item), abs=1e-6)
    vector = embedder.embed([item.prompt])[0]
    assert scorer.score_one(item, vector) == pytest.approx(scorer.score_one(item), abs=1e-6)
    assert len(scorer.score([])) == 0


def test_a_replaced_head_is_refused(trained: tuple[Path, list[AnswerExample]], tmp_path: Path) -> None:
    out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "head.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="sha256"):
        AnswerScorer.from_path(copy)


def test_the_prompt_classifier_is_not_an_answer_head() -> None:
    with pytest.raises(ModelLoadError, match="not an answer-quality head"):
        AnswerScorer.from_path(DEFAULT_MODEL_DIR)


def test_another_embedder_file_is_shared_only_by_a_head_that_never_runs_it(
    trained: tuple[Path, list[AnswerExample]], embedder: Embedder, tmp_path: Path
) -> None:
    """The router may serve another file of the embedder than the head was trained on (`scoring.embedder:
    auto` picks int8_full where it is faster): a scalar head shares it unused, a head that reads embeddings
    refuses it, or with own_file_if_other loads its trained file itself, and scores as with that file."""
    out, examples = trained
    fp32 = Embedder.from_path(SHIPPED_EMBEDDER, variant="model.onnx", threads=1, long_text="joined")
    assert fp32.variant != embedder.variant  # the fixture's is the trained file (int8)
    scalar = AnswerScorer.from_path(out, embedder=fp32)
    assert not scalar.embeds and scalar.embedder is fp32
    assert scalar.score_one(examples[0].item) == AnswerScorer.from_path(out).score_one(examples[0].item)

    recipe = AnswerRecipe(calibration_folds=2, features=("mean_logprob", COSINE_FEATURE))
    train_answer_head(examples, embedder, SHIPPED_EMBEDDER, tmp_path / "m", recipe=recipe)
    with pytest.raises(ModelLoadError, match="reads its embeddings; the embedder passed in is model.onnx"):
        AnswerScorer.from_path(tmp_path / "m", embedder=fp32)
    own = AnswerScorer.from_path(tmp_path / "m", embedder=fp32, own_file_if_other=True)
    assert own.embeds and own.embedder is not fp32 and own.embedder.variant == embedder.variant
    shared = AnswerScorer.from_path(tmp_path / "m", embedder=embedder)
    assert own.score_one(examples[1].item) == pytest.approx(shared.score_one(examples[1].item), abs=1e-6)


def test_one_class_is_a_data_error(embedder: Embedder, tmp_path: Path) -> None:
    examples = [e for e in _synthetic("x", 20, 3) if e.good]
    with pytest.raises(DataError):
        train_answer_head(examples, embedder, SHIPPED_EMBEDDER, tmp_path / "m")
    with pytest.raises(DataError):
        train_answer_head([], embedder, SHIPPED_EMBEDDER, tmp_path / "m")


def test_the_shipped_verifier_loads_and_ranks_a_wrong_answer_lower() -> None:
    directory = SHIPPED_MODELS / "verifier"
    if not (directory / "manifest.json").is_file():
        pytest.skip("models/verifier not built")
    scorer = AnswerScorer.from_path(directory, threads=1)
    sure = tuple(TokenLogprob(-0.01, -6.0) for _ in range(3))
    unsure = tuple(TokenLogprob(-1.4, -1.6) for _ in range(12))
    prompt = "What is 7 + 5? Answer with the number only."
    good, bad = scorer.score(
        [
            AnswerInput(prompt, "12", "stop", 3, sure),
            AnswerInput(prompt, "7 + 5 = 13, so it is 13.", "stop", 12, unsure),
        ]
    )
    assert good > bad


def test_training_twice_on_the_same_rows_gives_the_same_bytes_and_version(
    embedder: Embedder, tmp_path: Path
) -> None:
    examples = _synthetic("date", 40, 5)
    recipe = AnswerRecipe(calibration_folds=3)
    first = train_answer_head(examples, embedder, SHIPPED_EMBEDDER, tmp_path / "a", recipe=recipe)
    second = train_answer_head(examples, embedder, SHIPPED_EMBEDDER, tmp_path / "b", recipe=recipe)
    assert (tmp_path / "a" / "head.onnx").read_bytes() == (tmp_path / "b" / "head.onnx").read_bytes()
    assert first.version == second.version


def test_focused_confidence_skips_format_tokens() -> None:
    from classifier.answer.confidence import focused_confidence

    tokens = (
        TokenLogprob(-0.01, -8.0, '{"'),
        TokenLogprob(-0.02, -9.0, "city"),
        TokenLogprob(-0.01, -7.0, '":'),
        TokenLogprob(-1.5, -1.7, ' "Oslo'),
        TokenLogprob(-0.01, -9.0, '"}'),
    )
    focused = focused_confidence(tokens)
    assert focused is not None
    assert focused.content_mean_logprob == pytest.approx((-0.02 - 1.5) / 2)
    assert focused.content_min_margin == pytest.approx(0.2)
    assert focused.content_mean_logprob < confidence_features(tokens).mean_logprob  # type: ignore[union-attr]
    assert parse_openai_logprobs([{"token": "x", "logprob": -0.1, "top_logprobs": []}])[0].token == "x"  # type: ignore[index]


def test_answer_agreement() -> None:
    from classifier.answer.consistency import answer_agreement

    assert answer_agreement("Positive.", "positive") == (1.0, 1.0)
    same, overlap = answer_agreement("Paris\nIt is in France.", "Paris is the capital.")
    assert same == 0.0 and 0 < overlap < 1
    assert answer_agreement("", "") == (0.0, 1.0)


def test_a_head_reads_the_features_its_recipe_names(embedder: Embedder, tmp_path: Path) -> None:
    examples = _synthetic("topic", 40, 6)
    examples = [
        AnswerExample(replace(e.item, sample=e.item.answer if e.good else "something else"), e.good, e.group)
        for e in examples
    ]
    names = ("content_mean_logprob", "first_min_margin", "sample_same_core", "sample_missing")
    recipe = AnswerRecipe(calibration_folds=2, features=names)
    manifest = train_answer_head(examples, embedder, SHIPPED_EMBEDDER, tmp_path / "m", recipe=recipe)
    assert manifest.head.features == list(names) and manifest.head.inputs == len(names)
    scorer = AnswerScorer.from_path(tmp_path / "m", embedder=embedder)
    assert scorer.uses_sample
    items = [e.item for e in examples]
    scores = scorer.score(items)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score([e.good for e in examples], scores) > 0.9
    without = scorer.score([replace(item, sample=None) for item in items])  # served without a sample
    assert ((without >= 0) & (without <= 1)).all() and not np.allclose(without, scores)
    with pytest.raises(DataError, match="unknown"):
        AnswerRecipe(features=("no_such_feature",))


def test_only_a_head_that_reads_embeddings_or_their_cosine_embeds(
    trained: tuple[Path, list[AnswerExample]], embedder: Embedder, tmp_path: Path
) -> None:
    out, examples = trained
    tokens = examples[0].item.logprobs
    # Same lengths, words and log-probabilities; different meaning, so only an embedding tells them apart.
    twins = [
        AnswerInput("What is the capital of France?", "Paris city", "stop", 3, tokens),
        AnswerInput("Name a large ocean, please.", "Oslo guess", "stop", 3, tokens),
    ]
    scalar_only = AnswerScorer.from_path(out, embedder=embedder)  # the default recipe: no cosine
    assert not scalar_only.embeds
    first, second = scalar_only.score(twins)
    assert first == second
    recipe = AnswerRecipe(calibration_folds=2, features=("mean_logprob", COSINE_FEATURE))
    train_answer_head(examples, embedder, SHIPPED_EMBEDDER, tmp_path / "m", recipe=recipe)
    with_cosine = AnswerScorer.from_path(tmp_path / "m", embedder=embedder)
    assert with_cosine.embeds
    first, second = with_cosine.score(twins)
    assert first != pytest.approx(second, abs=1e-7)
