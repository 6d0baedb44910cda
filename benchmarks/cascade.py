"""The answer-aware cascade, measured offline on real small-model answers with checkable ground truth.

    python benchmarks/cascade.py [--smoke] [--data FILE] [--json FILE] [--png FILE] [--ship DIR]

Small tier: SmolLM2-135M's real answers (benchmarks/data/, made by benchmarks/cascade_data.py), graded by
benchmarks/cascade_tasks.py. Large tier: a stand-in that is always right (quality 1), so the gap to close is
the small model's mistakes. Every router sends some answers to the large tier; all are compared by the
quality-vs-large-share curve and APGR (classifier.evaluation: 0.5 = random, 1 = best possible for the
share). Escalation order ("score", higher = escalate first):
- random; prompt-only (the shipped models/default classifier on the prompt); the oracle (wrong answers first);
- form (classifier.answer.form_verdict fails), confidence (low geometric-mean token probability), the
  learned head (1 - P(good)), each alone;
- the cascade: form failures, then answers under a confidence floor (picked on the training families),
  then by the head; optionally with `direct_large` (prompts at or above the shipped 10 %-share threshold
  go large first).
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
from classifier.answer.inputs import head_inputs  # noqa: E402
from classifier.answer.training import fit_head, mask_rows, select_inputs, train_answer_head  # noqa: E402
from classifier.data import Example  # noqa: E402
from classifier.evaluation import evaluate  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "cascade_smollm2.jsonl.gz"
SHARES = (0.1, 0.2, 0.3, 0.5)
CONFIDENCE_PRECISION = 0.9  # the confidence floor escalates only where >= 90 % of training answers were wrong


@dataclass(frozen=True)
class Row:
    """One graded small-tier answer."""

    family: str
    item: AnswerInput
    correct: int


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
            tokens = tuple(TokenLogprob(t[1], t[3]) for t in raw["tokens"]) or None
            item = AnswerInput(
                prompt=raw["prompt"],
                answer=raw["answer"],
                finish_reason=raw["finish_reason"],
                completion_tokens=raw["completion_tokens"],
                logprobs=tokens,
            )
            rows.append(Row(raw["family"], item, int(grade(task, raw["answer"]))))
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
    inputs: dict[str, np.ndarray], rows: Sequence[Row], recipe: AnswerRecipe, split: str, seed: int = 0
) -> np.ndarray:
    """Out-of-sample P(bad) per row: leave-one-family-out (`lofo`) or 5-fold over all rows (`within`)."""
    correct = np.array([r.correct for r in rows], dtype=np.float64)
    families = np.array([r.family for r in rows])
    masked = np.array(mask_rows(len(rows), recipe))
    bad = np.zeros(len(rows))
    if split == "lofo":
        folds = [families == f for f in sorted(set(families))]
    else:
        rng = np.random.default_rng(seed)
        fold_of = rng.integers(0, 5, len(rows))
        folds = [fold_of == k for k in range(5)]
    for test in folds:
        train = ~test
        # Masked rows teach the head to do without log-probabilities; tests always have them.
        train_inputs = np.where(masked[train, None], inputs["masked"][train], inputs["full"][train])
        trainer = fit_head(train_inputs, correct[train], np.ones(int(train.sum())), recipe)
        bad[test] = 1.0 - trainer.predict_proba(inputs["full"][test])[:, 1]
    return bad


def build_matrices(embedder: Any, rows: Sequence[Row], embeddings: bool) -> dict[str, np.ndarray]:
    items = [r.item for r in rows]
    prompts = embedder.embed([i.prompt for i in items])
    answers = embedder.embed([i.answer for i in items])
    full = head_inputs(prompts, answers, items)
    masked = head_inputs(prompts, answers, items, [True] * len(items))
    return {
        "full": select_inputs(full, embeddings, embedder.dim),
        "masked": select_inputs(masked, embeddings, embedder.dim),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a seconds-long run on a slice of the shipped data"
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--boot", type=int, help="bootstrap resamples (default 200; 0 with --smoke)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--png", type=Path, help="write the quality-vs-large-share curves here")
    parser.add_argument("--C", type=float, help="the head's C (default: AnswerRecipe's)")
    parser.add_argument("--no-embeddings", action="store_true", help="the head on the scalar features only")
    parser.add_argument(
        "--ship", type=Path, help="train the head on every row and write this model directory"
    )
    args = parser.parse_args()
    boot = args.boot if args.boot is not None else (0 if args.smoke else 200)

    from classifier.paths import DEFAULT_MODEL_DIR
    from classifier.scoring import Scorer

    rows = load_rows(args.data)
    recipe = AnswerRecipe()
    if args.C is not None:
        recipe = replace(recipe, C=args.C)
    if args.no_embeddings:
        recipe = replace(recipe, embeddings=False)
    if args.smoke:
        rows = rows[:210]
        recipe = replace(recipe, calibration_folds=2)
    prompt_scorer = Scorer.from_path(DEFAULT_MODEL_DIR)
    embedder = prompt_scorer.embedder
    prompt_score = prompt_scorer.score([r.item.prompt for r in rows]).astype(np.float64)
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
    matrices = {flag: build_matrices(embedder, rows, flag) for flag in (True, False)}

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
        "recipe": recipe.__dict__,
        "splits": {},
    }
    curves: dict[str, np.ndarray] = {}
    for split in ("lofo", "within"):
        head_bad = head_predictions(matrices[recipe.embeddings], rows, recipe, split)
        other = replace(recipe, embeddings=not recipe.embeddings)
        head_other_bad = head_predictions(matrices[other.embeddings], rows, other, split)
        floor = np.zeros(len(rows))
        for f in sorted(set(families)):
            test = families == f
            train = ~test if split == "lofo" else np.ones(len(rows), dtype=bool)
            floor[test] = confidence_floor(conf[train], correct[train])
        orders = {
            "prompt-only (shipped classifier)": prompt_score,
            "form alone": form_fail.astype(np.float64),
            "confidence alone": 1.0 - conf,
            "head alone": head_bad,
            f"head {'with' if other.embeddings else 'without'} the embeddings": head_other_bad,
            "cascade: form > confidence > head": cascade_order(form_fail, conf, floor, head_bad),
            "cascade + direct_large": cascade_order(
                form_fail, conf, floor, head_bad, prompt_score >= direct_threshold
            ),
            "oracle": 1.0 - correct,
        }
        split_out: dict[str, Any] = {
            "pooled": {"random": random_figures(rows, max(boot, 20))},
            "by_family": {},
        }
        for name, score in orders.items():
            split_out["pooled"][name] = figures(score, rows, boot)
        for f in sorted(set(families)):
            test = families == f
            if correct[test].min() == correct[test].max():
                continue  # always right or always wrong: nothing to rank, every router ties at 0.5
            sub = [r for r, t in zip(rows, test, strict=True) if t]
            split_out["by_family"][f] = {
                name: figures(score[test], sub, 0)["apgr"] for name, score in orders.items()
            }
        means = {
            name: round(
                float(np.nanmean([split_out["by_family"][f][name] for f in split_out["by_family"]])), 4
            )
            for name in orders
        }
        split_out["mean_over_families"] = means
        # APGR's ceiling is the oracle's, 1 - (wrong share) / 2: report the share of its gain over random too.
        by_family = split_out["by_family"]
        split_out["mean_share_of_oracle_gain"] = {
            name: round(
                float(
                    np.nanmean(
                        [(by_family[f][name] - 0.5) / (by_family[f]["oracle"] - 0.5) for f in by_family]
                    )
                ),
                4,
            )
            for name in orders
        }
        results["splits"][split] = split_out
        if split == "lofo":
            curves = orders
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.png:
        plot(curves, rows, args.png)
    if args.ship:
        ship(rows, embedder, recipe, args, results)
    return 0


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
) -> None:
    """Train the head on every row and write the model directory, with the benchmark's figures."""
    import os

    from classifier.paths import SHIPPED_EMBEDDER

    examples = [AnswerExample(r.item, r.correct, r.family) for r in rows]
    data = args.data.resolve()
    if data.is_relative_to(ROOT):  # the manifest names the file relative to the repository
        os.chdir(ROOT)
        data = data.relative_to(ROOT)
    lofo = results["splits"]["lofo"]
    manifest = train_answer_head(
        examples,
        embedder,
        SHIPPED_EMBEDDER,
        args.ship,
        recipe=recipe,
        data_files=[data],
        description=(
            "SmolLM2-135M-Instruct (Q4_1, llama.cpp, temperature 0, max_tokens 48) answers to synthetic "
            "tasks with programmatic ground truth (benchmarks/cascade_tasks.py); label: answer graded correct"
        ),
        metrics={
            "leave_one_family_out": {
                "pooled_apgr_head": lofo["pooled"]["head alone"]["apgr"],
                "pooled_auc_head": lofo["pooled"]["head alone"]["auc"],
                "mean_apgr_head": lofo["mean_over_families"]["head alone"],
                "mean_apgr_cascade": lofo["mean_over_families"]["cascade: form > confidence > head"],
                "mean_apgr_prompt_only": lofo["mean_over_families"]["prompt-only (shipped classifier)"],
            }
        },
    )
    print(f"wrote {args.ship} (version {manifest.version})")


if __name__ == "__main__":
    sys.exit(main())
