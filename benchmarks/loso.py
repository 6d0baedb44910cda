"""Leave-one-source-out validation of head recipes on ../shared/data/routing/train.jsonl.

Each source group is held out in turn; a head trained on the others scores it. Prints APGR and AUC per
held-out group and their mean, for each recipe, plus AUC against MATH difficulty (levels 4-5 vs 1-3)
on math500_levels.jsonl, a set no recipe trains on.

    python benchmarks/loso.py [--data DIR] [--long-text head_tail|joined|truncate] [--embedder fp32|int8]
                              [--cache FILE] [--quick]

--long-text and --embedder default to the shipped recipe's (joined, int8). The cache defaults to
.cache/embeddings[.<long-text>][.int8].npz (no long-text part for head_tail, no .int8 for fp32;
benchmarks/long_text.py cache derives one from the head_tail cache without re-embedding short texts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.cache import embed_cached  # noqa: E402
from classifier.data import read_examples  # noqa: E402
from classifier.embedding import VARIANT_FILES, Embedder, LongText  # noqa: E402
from classifier.evaluation import auc_need_large, evaluate  # noqa: E402
from classifier.features import structural_features  # noqa: E402
from classifier.training import HeadTrainer, Recipe, build_training_set  # noqa: E402

EMBEDDER = ROOT / "models" / "embedder" / "all-MiniLM-L6-v2"
GROUPS = {"routellm_gsm8k": "gsm8k", "zeroeval_gsm": "gsm8k"}  # same GSM8K prompts: hold out together


def group_of(source: str) -> str:
    return GROUPS.get(source, source.removeprefix("routellm_").removeprefix("routerbench_"))


def columns(kind: str, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
    features = structural_features(texts)
    if kind == "embedding":
        return embeddings
    if kind == "features":
        return features
    return np.hstack([embeddings, features])


def default_cache(long_text: str, embedder: str = "fp32") -> Path:
    """.cache/embeddings[.<long_text>][.int8].npz: no long-text part for head_tail, no .int8 for fp32."""
    parts = ["embeddings", *([long_text] if long_text != "head_tail" else [])]
    parts += [embedder] if embedder != "fp32" else []
    return ROOT / ".cache" / (".".join(parts) + ".npz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    parser.add_argument("--long-text", choices=get_args(LongText), default=Recipe().long_text)
    parser.add_argument("--embedder", choices=tuple(VARIANT_FILES), default=Recipe().embedder)
    parser.add_argument("--cache", type=Path, help="npz embedding cache (default: from the two above)")
    parser.add_argument("--quick", action="store_true", help="a few recipes only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    examples = read_examples([args.data / "train.jsonl"])
    embedder = Embedder.from_path(EMBEDDER, variant=VARIANT_FILES[args.embedder], long_text=args.long_text)
    cache = args.cache or default_cache(args.long_text, args.embedder)
    texts = sorted({e.text for e in examples})
    math_rows = [json.loads(line) for line in (args.data / "math500_levels.jsonl").open()]
    math_texts = [r["prompt"] for r in math_rows]
    started = time.perf_counter()
    vectors = embed_cached(embedder, texts + math_texts, cache)
    print(
        f"embedded {len(texts) + len(math_texts)} prompts in {time.perf_counter() - started:.0f}s", flush=True
    )
    row_of = {t: i for i, t in enumerate(texts)}
    math_vectors = vectors[len(texts) :]
    math_hard = np.array([0 if r["level"] >= 4 else 1 for r in math_rows])  # "small_ok"-like: 0 = hard

    recipes = [
        ("both", Recipe()),  # the shipped recipe
        ("both", Recipe(label="small_ok")),
        ("both", Recipe(balance="equal")),
        ("both", Recipe(C=0.1)),
        ("embedding", Recipe()),
        ("features", Recipe(C=1.0)),
        ("features", Recipe(C=1.0, label="small_ok")),
    ]
    if args.quick:
        recipes = recipes[:2]
    groups = sorted({group_of(e.source) for e in examples})
    results = []
    for kind, recipe in recipes:
        per_group = {}
        for held in groups:
            train = [e for e in examples if group_of(e.source) != held]
            test = [e for e in examples if group_of(e.source) == held]
            head = fit(kind, recipe, train, vectors, row_of)
            test_texts = [e.text for e in test]
            scores = head.predict_proba(columns(kind, vectors[[row_of[t] for t in test_texts]], test_texts))[
                :, 1
            ]
            report = evaluate(scores, test)
            per_group[held] = {"apgr": report.apgr, "auc": report.auc}
        head = fit(kind, recipe, examples, vectors, row_of)
        math_scores = head.predict_proba(columns(kind, math_vectors, math_texts))[:, 1]
        math_auc = auc_need_large(math_scores, math_hard)
        name = f"{kind} C={recipe.C} balance={recipe.balance} label={recipe.label}"
        mean_apgr = float(np.mean([g["apgr"] for g in per_group.values()]))
        mean_auc = float(np.mean([g["auc"] for g in per_group.values()]))
        results.append(
            {
                "recipe": name,
                "groups": per_group,
                "mean_apgr": mean_apgr,
                "mean_auc": mean_auc,
                "math500_level_auc": math_auc,
            }
        )
        cells = " ".join(f"{g}={v['apgr']:.3f}" for g, v in per_group.items())
        print(
            f"{name:<58} mean APGR {mean_apgr:.3f} AUC {mean_auc:.3f} | MATH AUC {math_auc:.3f} | {cells}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def fit(kind: str, recipe: Recipe, train: list, vectors: np.ndarray, row_of: dict[str, int]) -> HeadTrainer:
    training = build_training_set(train, recipe.balance, recipe.label)
    inputs = columns(kind, vectors[[row_of[t] for t in training.texts]], training.texts)
    trainer = HeadTrainer(recipe)
    trainer.pipeline_ = trainer._fit_one(
        inputs, training.need_large, training.weights
    )  # ranking only: no Platt
    return trainer


if __name__ == "__main__":
    raise SystemExit(main())
