"""The answer-aware cascade, measured offline on real small-model answers with checkable ground truth.

    python benchmarks/cascade.py [--smoke] [--data FILE] [--json FILE] [--png FILE] [--ship DIR]

Small tier: SmolLM2-135M's real answers (benchmarks/data/, made by benchmarks/cascade_data.py), graded by
benchmarks/cascade_tasks.py. Large tier: a stand-in that is always right (quality 1), so the gap to close is
the small model's mistakes. Every router sends some answers to the large tier; all are compared by the
quality-vs-large-share curve and APGR (classifier.evaluation: 0.5 = random, 1 = best possible for the
share). Escalation order ("score", higher = escalate first):
- random; prompt-only (the shipped models/default classifier on the prompt); the oracle (wrong answers first);
- form (classifier.answer.form_verdict fails), confidence (low geometric-mean token probability, over all
  tokens or the content tokens only), the first tokens' min margin, self-consistency (disagreement with a
  second answer sampled at temperature 0.8), the learned head (1 - P(good); shipped features, plus the
  self-consistency features, plus the MiniLM embeddings), each alone;
- the cascade: form failures, then answers under a content-confidence floor (picked on the training
  families), then by the head.
Also: a leave-one-family-out ablation of the feature sets, Platt vs isotonic calibration (Brier, ECE),
the share of wrong answers the head is confident in, the self-consistency sample's latency cost, and the
head trained on every row tested on `--cross` (the first round's greedy answers, another decoding), and
`--fewshot`: the same items answered with exemplars in front, each family held out, including what is left
when the small tier returns no log-probabilities (the head with them masked, self-consistency alone).
The head is scored leave-one-family-out (trained on the other task families) and within family (5-fold
cross-validation over all rows). Spread: 95 % bootstrap intervals over rows (random: 95 % of shuffles).
`--ship DIR` also trains the head on every row and writes the model directory (models/verifier).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.cascade_tasks import TaskItem, grade  # noqa: E402
from classifier.answer import AnswerExample, AnswerInput, AnswerRecipe, TokenLogprob, form_verdict  # noqa: E402
from classifier.answer.inputs import ANSWER_FEATURE_NAMES, head_inputs  # noqa: E402
from classifier.answer.training import (  # noqa: E402
    fit_head,
    mask_rows,
    mask_sample_rows,
    select_inputs,
    train_answer_head,
)
from classifier.data import Example  # noqa: E402
from classifier.evaluation import evaluate  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "cascade_smollm2_serve.jsonl.gz"
# The first round's answers (greedy, max_tokens 48, 7 families): a held-out decoding regime for --cross.
GREEDY_DATA = ROOT / "benchmarks" / "data" / "cascade_smollm2.jsonl.gz"
# The same items answered with three same-family exemplars in front (router.fewshot's selection).
FEWSHOT_DATA = ROOT / "benchmarks" / "data" / "cascade_smollm2_fewshot.jsonl.gz"
SHARES = (0.1, 0.2, 0.3, 0.5)
CONFIDENCE_PRECISION = 0.9  # the confidence floor escalates only where >= 90 % of training answers were wrong


@dataclass(frozen=True)
class Row:
    """One graded small-tier answer (`item.sample`: the second, sampled answer, when the data has one)."""

    family: str
    item: AnswerInput
    correct: int
    latency_ms: float = 0.0
    sample_latency_ms: float | None = None


def load_rows(path: Path) -> list[Row]:
    """The dataset's rows, regraded with the current graders (the gold answer is stored with each row)."""
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            raw = json.loads(line)
            task = TaskItem(
                raw["family"], raw["template"], raw["difficulty"], raw["system"], raw["prompt"], raw["gold"]
            )
            tokens = tuple(TokenLogprob(t[1], t[3], t[0]) for t in raw["tokens"]) or None
            sample = raw.get("sample")
            item = AnswerInput(
                prompt=raw["prompt"],
                answer=raw["answer"],
                finish_reason=raw["finish_reason"],
                completion_tokens=raw["completion_tokens"],
                logprobs=tokens,
                sample=sample["answer"] if sample else None,
                exemplars=int(raw.get("exemplars", 0)),
            )
            rows.append(
                Row(
                    raw["family"],
                    item,
                    int(grade(task, raw["answer"])),
                    raw.get("latency_ms", 0.0),
                    sample["latency_ms"] if sample else None,
                )
            )
    return rows


def examples_of(rows: Sequence[Row]) -> list[Example]:
    return [
        Example(
            text=r.item.prompt,
            small_ok=r.correct,
            source=r.family,
            small_score=float(r.correct),
            large_score=1.0,
            scale="correct01",
        )
        for r in rows
    ]


def figures(scores: np.ndarray, rows: Sequence[Row], boot: int, seed: int = 0) -> dict[str, Any]:
    """APGR (with a bootstrap interval), AUC and quality at fixed large shares for one escalation order."""
    report = evaluate(scores, examples_of(rows))
    curve = report.curve
    out: dict[str, Any] = {
        "apgr": round(report.apgr, 4),
        "auc": round(report.auc, 4) if report.auc == report.auc else None,
        "quality_at": {
            str(s): round(float(np.interp(s, curve.large_share, curve.quality)), 4) for s in SHARES
        },
    }
    if boot:
        rng = np.random.default_rng(seed)
        values = []
        for _ in range(boot):
            pick = rng.integers(0, len(rows), len(rows))
            sample = [rows[i] for i in pick]
            value = evaluate(scores[pick], examples_of(sample)).apgr
            if value == value:
                values.append(value)
        out["apgr_95"] = [
            round(float(np.percentile(values, 2.5)), 4),
            round(float(np.percentile(values, 97.5)), 4),
        ]
    return out


def random_figures(rows: Sequence[Row], draws: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    examples = examples_of(rows)
    values = [evaluate(rng.random(len(rows)), examples).apgr for _ in range(max(draws, 2))]
    return {
        "apgr": round(float(np.mean(values)), 4),
        "apgr_95": [round(float(np.percentile(values, q)), 4) for q in (2.5, 97.5)],
    }


def confidence_floor(conf: np.ndarray, correct: np.ndarray) -> float:
    """The largest confidence score below which >= CONFIDENCE_PRECISION of answers were wrong (0: none)."""
    order = np.argsort(conf)
    wrong_share = np.cumsum(1 - correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero((wrong_share >= CONFIDENCE_PRECISION) & (np.arange(1, len(order) + 1) >= 5))[0]
    return float(conf[order][ok[-1]]) if len(ok) else 0.0


def cascade_order(
    form_fail: np.ndarray,
    conf: np.ndarray,
    floor: np.ndarray,
    head_bad: np.ndarray,
    direct_large: np.ndarray | None = None,
) -> np.ndarray:
    """One escalation score for the cascade's stages: direct_large > form > confidence floor > head."""
    score = np.where(conf <= floor, 2.0 + (1 - conf), head_bad)
    score = np.where(form_fail, 4.0, score)
    if direct_large is not None:
        score = np.where(direct_large, 6.0, score)
    return score


def head_predictions(
    inputs: dict[str, np.ndarray],
    rows: Sequence[Row],
    recipe: AnswerRecipe,
    split: str,
    seed: int = 0,
    calibration: str = "platt",
) -> np.ndarray:
    """Out-of-sample P(bad) per row: leave-one-family-out (`lofo`) or 5-fold over all rows (`within`).

    `calibration` "isotonic" maps the head's decision through an isotonic fit on the training folds'
    out-of-fold decisions instead of the Platt sigmoid (the ranking is the same but for ties)."""
    from sklearn.isotonic import IsotonicRegression

    correct = np.array([r.correct for r in rows], dtype=np.float64)
    families = np.array([r.family for r in rows])
    chosen = training_matrix(inputs, recipe)
    dim = (inputs["full"].shape[1] - len(ANSWER_FEATURE_NAMES)) // 2

    def pick(matrix: np.ndarray) -> np.ndarray:
        return select_inputs(matrix, recipe.embeddings, dim, recipe.columns)

    bad = np.zeros(len(rows))
    if split == "lofo":
        folds = [families == f for f in sorted(set(families))]
    else:
        rng = np.random.default_rng(seed)
        fold_of = rng.integers(0, 5, len(rows))
        folds = [fold_of == k for k in range(5)]
    for test in folds:
        train = ~test
        trainer = fit_head(pick(chosen[train]), correct[train], np.ones(int(train.sum())), recipe)
        test_inputs = pick(inputs["full"][test])
        if calibration == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
            iso.fit(trainer.oof_decision_, correct[train])
            a, b = trainer.platt_  # undo the Platt fold-in to get the raw decision back
            decision = (trainer.pipeline_.decision_function(test_inputs) - b) / a
            bad[test] = 1.0 - iso.predict(decision)
        else:
            bad[test] = 1.0 - trainer.predict_proba(test_inputs)[:, 1]
    return bad


def training_matrix(inputs: dict[str, np.ndarray], recipe: AnswerRecipe) -> np.ndarray:
    """The rows a head trains on: the recipe's share of them with log-probabilities (and, independently,
    the second sample) hidden, so it also serves answers without them; test rows keep theirs."""
    rows = inputs["full"].shape[0]
    masked = np.array(mask_rows(rows, recipe))[:, None]
    masked_sample = np.array(mask_sample_rows(rows, recipe))[:, None]
    return np.where(
        masked,
        np.where(masked_sample, inputs["both"], inputs["masked"]),
        np.where(masked_sample, inputs["no_sample"], inputs["full"]),
    )


def calibration_error(p_good: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Brier score and expected calibration error (equal-width bins) of P(good)."""
    edges = np.minimum((p_good * bins).astype(int), bins - 1)
    ece = sum(
        abs(p_good[edges == k].mean() - correct[edges == k].mean()) * (edges == k).mean()
        for k in range(bins)
        if (edges == k).any()
    )
    return {"brier": round(float(np.mean((p_good - correct) ** 2)), 4), "ece": round(float(ece), 4)}


def build_matrices(embedder: Any, rows: Sequence[Row]) -> dict[str, np.ndarray]:
    """Full input matrices (embeddings + every v2 scalar) with nothing / logprobs / sample / both hidden."""
    items = [r.item for r in rows]
    prompts = embedder.embed([i.prompt for i in items])
    answers = embedder.embed([i.answer for i in items])
    yes, no = [True] * len(items), [False] * len(items)
    return {
        "full": head_inputs(prompts, answers, items, no, no),
        "masked": head_inputs(prompts, answers, items, yes, no),
        "no_sample": head_inputs(prompts, answers, items, no, yes),
        "both": head_inputs(prompts, answers, items, yes, yes),
    }


# Feature sets compared by leave-one-family-out (the ablation behind DEFAULT_FEATURES).
V1 = ANSWER_FEATURE_NAMES[:14]
FOCUSED = tuple(n for n in ANSWER_FEATURE_NAMES if n.startswith(("content_", "first_")))
PROMPT_ANSWER = ("answer_in_prompt_share", "log_answer_lines")
SAMPLE = ("sample_same_core", "sample_word_overlap", "sample_missing")
EXEMPLARS = "log_exemplars"  # how many few-shot exemplars the answer had in front of it
V1_NO_COSINE = tuple(n for n in V1 if n != "prompt_answer_cosine")
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "v1 (14 scalars)": V1,
    "v1 without prompt-answer cosine (no answer embedding)": V1_NO_COSINE,
    "v1 + focused confidence": V1 + FOCUSED,
    "v1 + focused + prompt-answer": V1 + FOCUSED + PROMPT_ANSWER,
    "v1 + focused + prompt-answer + sample": V1 + FOCUSED + PROMPT_ANSWER + SAMPLE,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a seconds-long run on a slice of the shipped data"
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--cross", type=Path, default=GREEDY_DATA, help="also test on these rows ('' to skip)"
    )
    parser.add_argument("--boot", type=int, help="bootstrap resamples (default 200; 0 with --smoke)")
    parser.add_argument(
        "--fewshot",
        type=Path,
        default=FEWSHOT_DATA,
        help="answers given with exemplars (cascade_data.py --exemplars): held-out check, and shipped on "
        "('' to skip)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--png", type=Path, help="write the quality-vs-large-share curves here")
    parser.add_argument("--C", type=float, help="the head's C (default: AnswerRecipe's)")
    parser.add_argument("--no-embeddings", action="store_true", help="the head on the scalar features only")
    parser.add_argument(
        "--ship", type=Path, help="train the head on every row and write this model directory"
    )
    args = parser.parse_args()
    boot = args.boot if args.boot is not None else (0 if args.smoke else 200)

    from classifier.answer.confidence import focused_confidence
    from classifier.paths import DEFAULT_MODEL_DIR
    from classifier.scoring import Scorer

    rows = load_rows(args.data)
    recipe = AnswerRecipe()
    if args.C is not None:
        recipe = replace(recipe, C=args.C)
    if args.no_embeddings:
        recipe = replace(recipe, embeddings=False)
    if args.smoke:
        rows = rows[:240]
        recipe = replace(recipe, calibration_folds=2)
    prompt_scorer = Scorer.from_path(DEFAULT_MODEL_DIR)
    embedder = prompt_scorer.embedder
    prompts = [r.item.prompt for r in rows]
    prompt_score = prompt_scorer.score(prompts).astype(np.float64)
    direct_threshold = prompt_scorer.manifest.suggested_thresholds.get("0.1", 1.0)
    correct = np.array([r.correct for r in rows], dtype=np.float64)
    families = np.array([r.family for r in rows])
    form_fail = np.array(
        [
            not form_verdict(
                r.item.answer, finish_reason=r.item.finish_reason, completion_tokens=r.item.completion_tokens
            ).ok
            for r in rows
        ]
    )
    conf = np.array([c.score if (c := r.item.confidence()) is not None else 1.0 for r in rows])
    focused = [focused_confidence(r.item.logprobs) for r in rows]
    content_conf = np.array([np.exp(f.content_mean_logprob) if f else 1.0 for f in focused])
    first_margin = np.array([f.first_min_margin if f else 20.0 for f in focused])
    has_sample = np.array([r.item.sample is not None for r in rows])
    agreement = agreements(rows)
    matrices = build_matrices(embedder, rows)
    results: dict[str, Any] = {
        "data": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data),
        "rows": len(rows),
        "small_accuracy": round(float(correct.mean()), 4),
        "accuracy_by_family": {
            f: round(float(correct[families == f].mean()), 4) for f in sorted(set(families))
        },
        "rows_by_family": {f: int((families == f).sum()) for f in sorted(set(families))},
        "direct_large_threshold": direct_threshold,
        "direct_large_share": round(float((prompt_score >= direct_threshold).mean()), 4),
        "form_fail_share": round(float(form_fail.mean()), 4),
        "recipe": {**recipe.__dict__, "features": list(recipe.features)},
        "splits": {},
    }
    if has_sample.any():
        main_ms = np.array([r.latency_ms for r in rows])[has_sample]
        sample_ms = np.array([r.sample_latency_ms for r in rows if r.sample_latency_ms is not None])
        results["self_consistency"] = {
            "rows_with_sample": int(has_sample.sum()),
            "accuracy_when_agreeing": round(float(correct[has_sample & (agreement >= 0.99)].mean()), 4),
            "accuracy_when_disagreeing": round(float(correct[has_sample & (agreement < 0.99)].mean()), 4),
            "agree_share": round(float((agreement[has_sample] >= 0.99).mean()), 4),
            "added_latency_ratio_mean": round(float(sample_ms.sum() / main_ms.sum()), 3),
            "note": "sample latency / answer latency, one process, side by side (shared 2-core AVX-512)",
        }
    curves: dict[str, np.ndarray] = {}
    no_sample_recipe = replace(recipe, features=tuple(n for n in recipe.features if n not in SAMPLE))
    with_sample_recipe = replace(recipe, features=recipe.features + SAMPLE)
    for split in ("lofo", "within"):
        head_bad = head_predictions(matrices, rows, no_sample_recipe, split)
        head_sample_bad = head_predictions(matrices, rows, with_sample_recipe, split)
        head_emb_bad = head_predictions(matrices, rows, replace(no_sample_recipe, embeddings=True), split)
        floor = np.zeros(len(rows))
        for f in sorted(set(families)):
            test = families == f
            train = ~test if split == "lofo" else np.ones(len(rows), dtype=bool)
            floor[test] = confidence_floor(content_conf[train], correct[train])
        orders = {
            "prompt-only (shipped classifier)": prompt_score,
            "form alone": form_fail.astype(np.float64),
            "confidence alone (all tokens)": 1.0 - conf,
            "content-token confidence alone": 1.0 - content_conf,
            "first-tokens margin alone": -first_margin,
            "self-consistency alone (2nd sample)": 1.0 - agreement,
            "head (shipped features)": head_bad,
            "head + self-consistency": head_sample_bad,
            "head + embeddings": head_emb_bad,
            "cascade: form > confidence > head": cascade_order(form_fail, content_conf, floor, head_bad),
            "cascade + self-consistency head": cascade_order(form_fail, content_conf, floor, head_sample_bad),
            "oracle": 1.0 - correct,
        }
        split_out = evaluate_orders(orders, rows, correct, families, boot)
        if split == "lofo":
            split_out["feature_sets"] = {
                name: evaluate_orders(
                    {name: head_predictions(matrices, rows, replace(recipe, features=names), split)},
                    rows,
                    correct,
                    families,
                    0,
                )["mean_over_families"][name]
                for name, names in FEATURE_SETS.items()
            }
            split_out["calibration"] = {
                kind: calibration_error(
                    1.0 - head_predictions(matrices, rows, no_sample_recipe, split, calibration=kind), correct
                )
                for kind in ("platt", "isotonic")
            }
            # Confidently wrong: wrong answers the head would keep even when half the calls go large.
            keep = head_bad < np.quantile(head_bad, 0.5)
            split_out["wrong_kept_at_half_large"] = {
                f: round(float((keep & (correct == 0) & (families == f)).sum() / n_wrong), 3)
                for f in sorted(set(families))
                if (n_wrong := int(((correct == 0) & (families == f)).sum()))
            }
            curves = orders
        results["splits"][split] = split_out
    if str(args.cross) not in ("", ".") and args.cross.is_file():
        results["cross"] = cross_check(
            matrices, rows, no_sample_recipe, embedder, load_rows(args.cross), args.cross
        )
    ship_rows, ship_recipe, few_rows = list(rows), no_sample_recipe, []
    if str(args.fewshot) not in ("", ".") and args.fewshot.is_file():
        few_rows = load_rows(args.fewshot)
        if args.smoke:
            few_rows = few_rows[:120]
        results["fewshot"], ship_recipe = fewshot_check(
            rows,
            matrices,
            few_rows,
            embedder,
            no_sample_recipe,
            boot,
            dict(zip(prompts, prompt_score, strict=True)),
        )
        ship_rows += few_rows
    print_table(results)
    print_extras(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.png:
        plot(curves, rows, args.png)
    if args.ship:
        ship(ship_rows, embedder, ship_recipe, args, results, with_fewshot=bool(few_rows))
    return 0


def leave_family_out(
    train_rows: Sequence[Row],
    test_rows: Sequence[Row],
    p_good: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """P(bad) of each test row, each family's from a fit on the train rows of the other families only.

    `p_good(train, test)`: fit on the train rows where the mask `train` holds, return P(good) of the test
    rows where the mask `test` holds."""
    train_families = np.array([r.family for r in train_rows])
    test_families = np.array([r.family for r in test_rows])
    bad = np.zeros(len(test_rows))
    for family in sorted(set(test_families)):
        train, test = train_families != family, test_families == family
        bad[test] = 1.0 - p_good(train, test)
    return bad


def lofo_bad(
    train_m: dict[str, np.ndarray],
    train_rows: Sequence[Row],
    test_m: dict[str, np.ndarray],
    test_rows: Sequence[Row],
    recipe: AnswerRecipe,
) -> np.ndarray:
    """P(bad) of each test row from a head trained on the train rows of the other families only."""
    dim = (train_m["full"].shape[1] - len(ANSWER_FEATURE_NAMES)) // 2
    train_all = training_matrix(train_m, recipe)
    correct = np.array([r.correct for r in train_rows], dtype=np.float64)

    def p_good(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        trainer = fit_head(
            select_inputs(train_all[train], recipe.embeddings, dim, recipe.columns),
            correct[train],
            np.ones(int(train.sum())),
            recipe,
        )
        inputs = select_inputs(test_m["full"][test], recipe.embeddings, dim, recipe.columns)
        return trainer.predict_proba(inputs)[:, 1]  # type: ignore[no-any-return]

    return leave_family_out(train_rows, test_rows, p_good)


def at_threshold(bad: np.ndarray, correct: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """What the cascade does at its default head threshold: escalate when P(good) < `threshold`."""
    escalate = (1.0 - bad) < threshold
    wrong = correct == 0
    return {
        "escalated": round(float(escalate.mean()), 3),
        "wrong_kept": round(float((~escalate & wrong).sum() / max(int(wrong.sum()), 1)), 3),
        "final_accuracy": round(float(np.where(escalate, 1.0, correct).mean()), 3),
        "mean_p_good": round(float((1.0 - bad).mean()), 3),
        **calibration_error(1.0 - bad, correct),
    }


def fewshot_check(
    rows: Sequence[Row],
    matrices: dict[str, np.ndarray],
    few: Sequence[Row],
    embedder: Any,
    recipe: AnswerRecipe,
    boot: int,
    prompt_scores: dict[str, float],
) -> tuple[dict[str, Any], AnswerRecipe]:
    """Answers given with exemplars in front, each family held out: a head trained on zero-shot answers
    only, one trained on both without and with the exemplar count; prompt-only routing (`prompt_scores`,
    the shipped classifier's score of each prompt: the exemplars are not part of what it scores). Returns
    the figures and the recipe to ship (the exemplar feature when it is at least as good held out)."""
    few_m = build_matrices(embedder, few)
    both = [*rows, *few]
    both_m = {key: np.vstack([matrices[key], few_m[key]]) for key in matrices}
    plain = replace(recipe, features=tuple(n for n in recipe.features if n != EXEMPLARS))
    counted = replace(recipe, features=plain.features + (EXEMPLARS,))
    few_correct = np.array([r.correct for r in few], dtype=np.float64)
    few_families = np.array([r.family for r in few])
    conf = np.array([c.score if (c := r.item.confidence()) is not None else 1.0 for r in few])
    heads = {
        "head trained on zero-shot answers": lofo_bad(matrices, rows, few_m, few, plain),
        "head trained on both, no exemplar feature": lofo_bad(both_m, both, few_m, few, plain),
        "head trained on both, with the exemplar count": lofo_bad(both_m, both, few_m, few, counted),
    }
    consistency: dict[str, np.ndarray] = {}
    if all(r.item.sample is not None for r in few):  # the second, sampled answers
        sampled = replace(plain, features=plain.features + SAMPLE)
        heads["head trained on both, with self-consistency"] = lofo_bad(both_m, both, few_m, few, sampled)
        consistency["self-consistency alone"] = 1.0 - agreements(few)
    out = evaluate_orders(
        {
            "prompt-only (shipped classifier)": np.array([prompt_scores[r.item.prompt] for r in few]),
            **heads,
            "confidence alone": 1.0 - conf,
            **consistency,
            "oracle": 1.0 - few_correct,
        },
        few,
        few_correct,
        few_families,
        boot,
    )
    zero_correct = np.array([r.correct for r in rows], dtype=np.float64)
    zero_by_prompt = {r.item.prompt: r.correct for r in rows}
    paired = [(zero_by_prompt[r.item.prompt], r.correct) for r in few if r.item.prompt in zero_by_prompt]
    on_zero = {
        "head trained on zero-shot answers": head_predictions(matrices, rows, plain, "lofo"),
        "head trained on both, with the exemplar count": lofo_bad(both_m, both, matrices, rows, counted),
    }
    zero_out = evaluate_orders(on_zero, rows, zero_correct, np.array([r.family for r in rows]), 0)
    figures_out = {
        "rows": len(few),
        "exemplars_mean": round(float(np.mean([r.item.exemplars for r in few])), 2),
        "small_accuracy_same_items": {
            "zero_shot": round(float(np.mean([z for z, _ in paired])), 4),
            "with_exemplars": round(float(np.mean([f for _, f in paired])), 4),
            "items": len(paired),
        },
        "accuracy_by_family": {
            f: round(float(few_correct[few_families == f].mean()), 3) for f in sorted(set(few_families))
        },
        "answer_among_exemplars": answer_among_exemplars(few, zero_by_prompt),
        **{k: out[k] for k in ("mean_over_families", "mean_share_of_oracle_gain")},
        "pooled": out["pooled"],
        "at_threshold_0.5": {name: at_threshold(bad, few_correct) for name, bad in heads.items()},
        "zero_shot_rows_held_out": {
            name: {"mean_apgr": zero_out["mean_over_families"][name], **at_threshold(bad, zero_correct)}
            for name, bad in on_zero.items()
        },
    }
    if all(r.item.sample is not None for r in [*rows, *few]):
        figures_out["without_logprobs"] = without_logprobs(
            rows, matrices, few, few_m, both, both_m, plain, boot
        )
    with_count = figures_out["mean_over_families"]["head trained on both, with the exemplar count"]
    without = figures_out["mean_over_families"]["head trained on both, no exemplar feature"]
    return figures_out, counted if with_count >= without else plain


def agreements(rows: Sequence[Row]) -> np.ndarray:
    """The consistency verifier's value per row: how far its second, sampled answer agrees, in [0, 1]
    (1 for a row without one: nothing to disagree with)."""
    from classifier.answer import agreement_score

    return np.array(
        [agreement_score(r.item.answer, r.item.sample) if r.item.sample is not None else 1.0 for r in rows]
    )


def without_logprobs(
    rows: Sequence[Row],
    matrices: dict[str, np.ndarray],
    few: Sequence[Row],
    few_m: dict[str, np.ndarray],
    both: Sequence[Row],
    both_m: dict[str, np.ndarray],
    recipe: AnswerRecipe,
    boot: int,
) -> dict[str, Any]:
    """A small tier that returns no log-probabilities (Ollama through LiteLLM), each family held out, on
    the zero-shot and the few-shot answers: the head as trained (it sees them masked, as it serves them),
    the head with the self-consistency features, and the consistency verifier alone; what the consistency
    verifier and that head do at their default thresholds (escalate below agreement 0.5, P(good) 0.5)."""
    sampled = replace(recipe, features=recipe.features + SAMPLE)
    out: dict[str, Any] = {}
    for name, test_rows, test_m in (("zero_shot", rows, matrices), ("few_shot", few, few_m)):
        correct = np.array([r.correct for r in test_rows], dtype=np.float64)
        families = np.array([r.family for r in test_rows])
        hidden = {"full": test_m["masked"]}  # the log-probability inputs as a head sees them without any
        agreement = agreements(test_rows)
        orders = {
            "head, no log-probabilities": lofo_bad(both_m, both, hidden, test_rows, recipe),
            "head + self-consistency, no log-probabilities": lofo_bad(
                both_m, both, hidden, test_rows, sampled
            ),
            "self-consistency alone": 1.0 - agreement,
        }
        figures_of = evaluate_orders(orders, test_rows, correct, families, boot)
        escalate = agreement < 0.5
        out[name] = {
            "mean_over_families": figures_of["mean_over_families"],
            "pooled": figures_of["pooled"],
            "head_at_0.5": at_threshold(orders["head, no log-probabilities"], correct),
            "consistency_at_0.5": {
                "escalated": round(float(escalate.mean()), 3),
                "wrong_kept": round(
                    float((~escalate & (correct == 0)).sum() / max(int((correct == 0).sum()), 1)), 3
                ),
                "final_accuracy": round(float(np.where(escalate, 1.0, correct).mean()), 3),
            },
        }
    return out


# The items the data files answer: cascade_data.py --per-family 200, default seed (benchmarks/data/README.md).
DATA_ITEMS_PER_FAMILY, DATA_ITEMS_SEED = 200, 17


def answer_among_exemplars(few: Sequence[Row], zero_by_prompt: dict[str, bool]) -> dict[str, Any]:
    """Per family: the share of few-shot answers whose right answer was an exemplar's answer too (the same
    fact asked another way, or a label), and the accuracy with and without that, few-shot and zero-shot.
    The exemplars are rebuilt as cascade_data.py --exemplars chose them."""
    from benchmarks.cascade_data import family_stores, fewshot_messages
    from benchmarks.cascade_tasks import make_items

    items = make_items(DATA_ITEMS_PER_FAMILY, DATA_ITEMS_SEED)
    by_prompt = {item.prompt: item for item in items}
    stores, vectors = family_stores(items)
    split: dict[str, dict[bool, list[tuple[bool, bool]]]] = {}
    for row in few:
        item = by_prompt.get(row.item.prompt)
        if item is None or row.item.prompt not in zero_by_prompt:
            continue
        messages, _ = fewshot_messages(item, vectors[item.prompt], stores[item.family])
        among = item.gold in [m["content"] for m in messages if m["role"] == "assistant"]
        split.setdefault(row.family, {True: [], False: []})[among].append(
            (bool(row.correct), bool(zero_by_prompt[row.item.prompt]))
        )

    def accuracy(pairs: list[tuple[bool, bool]], index: int) -> float | None:
        return round(float(np.mean([p[index] for p in pairs])), 3) if pairs else None

    return {
        family: {
            "share": round(len(parts[True]) / (len(parts[True]) + len(parts[False])), 3),
            "fewshot_accuracy_among / not": [accuracy(parts[True], 0), accuracy(parts[False], 0)],
            "zero_shot_accuracy_among / not": [accuracy(parts[True], 1), accuracy(parts[False], 1)],
        }
        for family, parts in sorted(split.items())
    }


def cross_check(
    matrices: dict[str, np.ndarray],
    rows: Sequence[Row],
    recipe: AnswerRecipe,
    embedder: Any,
    other: Sequence[Row],
    path: Path,
) -> dict[str, Any]:
    """The head trained on every row, tested on another data set (another decoding or model)."""
    correct = np.array([r.correct for r in rows], dtype=np.float64)
    dim = (matrices["full"].shape[1] - len(ANSWER_FEATURE_NAMES)) // 2
    masked = np.array(mask_rows(len(rows), recipe))
    train = np.where(masked[:, None], matrices["masked"], matrices["full"])
    trainer = fit_head(
        select_inputs(train, recipe.embeddings, dim, recipe.columns), correct, np.ones(len(rows)), recipe
    )
    test = select_inputs(build_matrices(embedder, other)["full"], recipe.embeddings, dim, recipe.columns)
    bad = 1.0 - trainer.predict_proba(test)[:, 1]
    other_correct = np.array([r.correct for r in other], dtype=np.float64)
    other_families = np.array([r.family for r in other])
    conf = np.array([c.score if (c := r.item.confidence()) is not None else 1.0 for r in other])
    out = evaluate_orders(
        {"head": bad, "confidence alone": 1.0 - conf, "oracle": 1.0 - other_correct},
        other,
        other_correct,
        other_families,
        0,
    )
    return {
        "data": path.name,
        "rows": len(other),
        **{k: out[k] for k in ("mean_over_families", "mean_share_of_oracle_gain")},
        "pooled_head": out["pooled"]["head"],
    }


def evaluate_orders(
    orders: dict[str, np.ndarray], rows: Sequence[Row], correct: np.ndarray, families: np.ndarray, boot: int
) -> dict[str, Any]:
    """Pooled figures (with bootstrap), APGR per family, their mean, the mean share of the oracle's gain."""
    split_out: dict[str, Any] = {"pooled": {"random": random_figures(rows, max(boot, 20))}, "by_family": {}}
    for name, score in orders.items():
        split_out["pooled"][name] = figures(score, rows, boot)
    oracle = 1.0 - correct
    for f in sorted(set(families)):
        test = families == f
        if correct[test].min() == correct[test].max():
            continue  # always right or always wrong: nothing to rank, every router ties at 0.5
        sub = [r for r, t in zip(rows, test, strict=True) if t]
        split_out["by_family"][f] = {
            name: figures(score[test], sub, 0)["apgr"] for name, score in orders.items()
        }
        split_out["by_family"][f]["oracle"] = figures(oracle[test], sub, 0)["apgr"]
    by_family = split_out["by_family"]
    split_out["mean_over_families"] = {
        name: round(float(np.nanmean([by_family[f][name] for f in by_family])), 4) for name in orders
    }
    # APGR's ceiling is the oracle's, 1 - (wrong share) / 2: report the share of its gain over random too.
    split_out["mean_share_of_oracle_gain"] = {
        name: round(
            float(
                np.nanmean([(by_family[f][name] - 0.5) / (by_family[f]["oracle"] - 0.5) for f in by_family])
            ),
            4,
        )
        for name in orders
    }
    return split_out


def print_extras(results: dict[str, Any]) -> None:
    lofo = results["splits"]["lofo"]
    print("\nleave-one-family-out mean APGR by feature set: " + json.dumps(lofo["feature_sets"]))
    print("calibration of P(good), held-out families: " + json.dumps(lofo["calibration"]))
    print(
        "wrong answers kept at a 50 % large share, by family: " + json.dumps(lofo["wrong_kept_at_half_large"])
    )
    if "cross" in results:
        print("trained on all rows, tested on " + json.dumps(results["cross"]))
    if "self_consistency" in results:
        print("self-consistency: " + json.dumps(results["self_consistency"]))
    if "fewshot" in results:
        few = results["fewshot"]
        accuracy = {
            k: few[k] for k in ("small_accuracy_same_items", "accuracy_by_family", "answer_among_exemplars")
        }
        print(
            f"\nwith exemplars in front ({few['rows']} answers, each family held out): {json.dumps(accuracy)}"
        )
        for name, value in few["mean_over_families"].items():
            pooled = few["pooled"].get(name, {})
            print(
                f"  {_figures_line(name, value, pooled)}  {json.dumps(few['at_threshold_0.5'].get(name, {}))}"
            )
        print("  on the zero-shot answers: " + json.dumps(few["zero_shot_rows_held_out"]))
        for name, part in few.get("without_logprobs", {}).items():
            print(f"  without log-probabilities, {name} answers:")
            for order, value in part["mean_over_families"].items():
                print(f"    {_figures_line(order, value, part['pooled'][order])}")
            print(f"    head at P(good) < 0.5: {json.dumps(part['head_at_0.5'])}")
            print(f"    consistency verifier at agreement < 0.5: {json.dumps(part['consistency_at_0.5'])}")


def _figures_line(name: str, mean_apgr: float, pooled: dict[str, Any]) -> str:
    low, high = pooled.get("apgr_95", (float("nan"), float("nan")))
    return (
        f"{name:<48} mean APGR {mean_apgr:.3f}  pooled {pooled['apgr']:.3f} [{low:.3f}, {high:.3f}] "
        f"AUC {pooled.get('auc', float('nan')):.3f}"
    )


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{results['rows']} answers, small accuracy {results['small_accuracy']:.3f}; by family "
        + ", ".join(f"{f} {a:.2f}" for f, a in results["accuracy_by_family"].items())
    )
    for split, title in (
        ("lofo", "held-out family (leave-one-family-out)"),
        ("within", "within family (5-fold)"),
    ):
        out = results["splits"][split]
        print(
            f"\n{title}: pooled APGR [95 % interval], AUC, quality at large share "
            + "/".join(f"{int(s * 100)}%" for s in SHARES)
            + ", mean APGR over families, its share of the oracle's gain"
        )
        for name, row in out["pooled"].items():
            interval = row.get("apgr_95")
            spread = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
            quality = "/".join(f"{q:.3f}" for q in row.get("quality_at", {}).values())
            auc = row.get("auc")
            print(
                f"  {name:<36}{row['apgr']:>7.3f} {spread:<17}{'' if auc is None else f'{auc:.3f}':>7}"
                f"  {quality:<24}{out['mean_over_families'].get(name, float('nan')):>7.3f}"
                f"{out['mean_share_of_oracle_gain'].get(name, float('nan')):>7.3f}"
            )


def plot(orders: dict[str, np.ndarray], rows: Sequence[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.8), dpi=110)
    examples = examples_of(rows)
    for name, score in orders.items():
        report = evaluate(score, examples)
        axes.plot(report.curve.large_share, report.curve.quality, label=f"{name} ({report.apgr:.3f})")
    first = evaluate(np.zeros(len(rows)), examples)
    axes.plot([0, 1], [first.quality_small, first.quality_large], "--", color="grey", label="random (0.5)")
    axes.set_xlabel("share of calls sent to the large tier")
    axes.set_ylabel("accuracy (large tier always right)")
    axes.set_title("Cascade vs prompt-only routing, held-out task families (APGR)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def ship(
    rows: Sequence[Row],
    embedder: Any,
    recipe: AnswerRecipe,
    args: argparse.Namespace,
    results: dict[str, Any],
    with_fewshot: bool = False,
) -> None:
    """Train the head on every row and write the model directory, with the benchmark's figures."""
    import os

    from classifier.paths import SHIPPED_EMBEDDER

    examples = [AnswerExample(r.item, r.correct, r.family) for r in rows]
    files = [args.data.resolve(), *([args.fewshot.resolve()] if with_fewshot else [])]
    if all(f.is_relative_to(ROOT) for f in files):  # the manifest names the files relative to the repository
        os.chdir(ROOT)
        files = [f.relative_to(ROOT) for f in files]
    lofo = results["splits"]["lofo"]
    manifest = train_answer_head(
        examples,
        embedder,
        SHIPPED_EMBEDDER,
        args.ship,
        recipe=recipe,
        data_files=files,
        description=(
            "SmolLM2-135M-Instruct (Q4_1, llama.cpp) answers at the embedded tier's serve defaults "
            "(temperature 0.2, top_p 0.9, max_tokens 256, stops <|im_end|> <|im_start|> three newlines) to "
            "synthetic tasks of 11 families with programmatic ground truth (benchmarks/cascade_tasks.py); "
            "label: answer graded correct"
            + (
                "; with the same items answered again with three same-family exemplars in front "
                "(router.fewshot's selection of gold answers)"
                + ("; the exemplar count an input" if EXEMPLARS in recipe.features else "")
                if with_fewshot
                else ""
            )
        ),
        metrics={
            "leave_one_family_out": {
                "pooled_apgr_head": lofo["pooled"]["head (shipped features)"]["apgr"],
                "pooled_auc_head": lofo["pooled"]["head (shipped features)"]["auc"],
                "mean_apgr_head": lofo["mean_over_families"]["head (shipped features)"],
                "mean_share_of_oracle_gain_head": lofo["mean_share_of_oracle_gain"][
                    "head (shipped features)"
                ],
                "mean_apgr_cascade": lofo["mean_over_families"]["cascade: form > confidence > head"],
                "mean_apgr_prompt_only": lofo["mean_over_families"]["prompt-only (shipped classifier)"],
                "mean_apgr_oracle": lofo["mean_over_families"]["oracle"],
            }
        },
    )
    print(f"wrote {args.ship} (version {manifest.version})")


if __name__ == "__main__":
    sys.exit(main())
