"""Routing quality on data a router never saw, beside random and LiteLLM's keyword complexity router.

For each source group of ../shared/data/routing/train.jsonl (GSM8K's two sources form one group):
- `keyword`: LiteLLM's `ComplexityRouter.classify` score (no training; REASONING override ranks highest);
- `unseen`: our recipe trained on every *other* group (the held-out group is data it never saw);
- `retrained`: our recipe trained on `--labels` in-distribution prompts of the group (what `rightsize
  retrain` does with a team's own labels), evaluated on the group's other prompts;
- `mixed`: the `unseen` training rows plus those in-distribution labels, weighted to half the total
  (`rightsize retrain --base-data ... --base-weight`);
- `unseen@test` / `keyword@test`: the same two routers on exactly the retrained router's test prompts.
APGR 0.5 = random. Also AUC on MATH-500 difficulty (levels 4-5 = hard), a set nothing here trains on.

    python benchmarks/quality.py [--labels 300] [--seed 0] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loso import EMBEDDER, default_cache, group_of  # noqa: E402
from classifier.cache import embed_cached  # noqa: E402
from classifier.data import Example, read_examples  # noqa: E402
from classifier.embedding import VARIANT_FILES, Embedder  # noqa: E402
from classifier.evaluation import auc_need_large, evaluate  # noqa: E402
from classifier.scoring import head_inputs  # noqa: E402
from classifier.training import HeadTrainer, Recipe, build_training_set  # noqa: E402


def keyword_scorer():  # type: ignore[no-untyped-def]
    """LiteLLM's keyword router as a scoring function (its weighted score; REASONING tier first)."""
    from router.backends.litellm import import_litellm

    import_litellm()  # as the service does (offline price map, no ./.env)
    from litellm.router_strategy.complexity_router.complexity_router import ComplexityRouter
    from litellm.router_strategy.complexity_router.config import ComplexityTier

    router = ComplexityRouter(model_name="bench", litellm_router_instance=None)

    def score(texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            tier, weighted, _ = router.classify(text)
            out.append(weighted + (10.0 if tier == ComplexityTier.REASONING else 0.0))
        return np.array(out)

    return score


class Trained:
    """Our recipe on a subset of rows, scoring from the embedding cache."""

    def __init__(self, rows: list[Example], vectors: np.ndarray, row_of: dict[str, int], recipe: Recipe):
        training = build_training_set(rows, recipe.balance, recipe.label)
        self.vectors, self.row_of = vectors, row_of
        inputs = head_inputs(vectors[[row_of[t] for t in training.texts]], training.texts)
        self.trainer = HeadTrainer(recipe).fit(
            inputs, training.need_large, training.weights, training.fell_short
        )

    def __call__(self, texts: list[str]) -> np.ndarray:
        inputs = head_inputs(self.vectors[[self.row_of[t] for t in texts]], texts)
        return self.trainer.predict_proba(inputs)[:, 1]


WIDTHS = (9, 9, 14, 13, 11, 8)


def split_by_prompt(rows: list[Example], labels: int, seed: int) -> tuple[list[Example], list[Example]]:
    prompts = sorted({e.text for e in rows})
    random.Random(seed).shuffle(prompts)
    train = set(prompts[: min(labels, len(prompts) // 2)])  # small groups: half for training
    return [e for e in rows if e.text in train], [e for e in rows if e.text not in train]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    parser.add_argument("--cache", type=Path, default=default_cache(Recipe().long_text, Recipe().embedder))
    parser.add_argument("--labels", type=int, default=300, help="in-distribution prompts for `retrained`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    examples = read_examples([args.data / "train.jsonl"])
    math_rows = [json.loads(line) for line in (args.data / "math500_levels.jsonl").open()]
    math_texts = [r["prompt"] for r in math_rows]
    texts = sorted({e.text for e in examples} | set(math_texts))
    recipe = Recipe()
    variant = VARIANT_FILES[recipe.embedder]
    embedder = Embedder.from_path(EMBEDDER, variant=variant, long_text=recipe.long_text)
    vectors = embed_cached(embedder, texts, args.cache)
    row_of = {t: i for i, t in enumerate(texts)}
    keyword = keyword_scorer()
    recipe = Recipe()
    results = {}
    columns = ("keyword", "unseen", "keyword@test", "unseen@test", "retrained", "mixed")
    header = f"{'held-out group':<16}" + "".join(f"{c:>{w}}" for c, w in zip(columns, WIDTHS, strict=True))
    print(f"APGR (0.5 = random); retrained on {args.labels} in-distribution prompts\n{header}")
    for group in sorted({group_of(e.source) for e in examples}):
        held = [e for e in examples if group_of(e.source) == group]
        unseen = Trained([e for e in examples if group_of(e.source) != group], vectors, row_of, recipe)
        train, test = split_by_prompt(held, args.labels, args.seed)
        retrained = Trained(train, vectors, row_of, recipe)
        base = [e for e in examples if group_of(e.source) != group]
        local_weight = len(base) / max(len(train), 1)
        mixed = Trained(base + [replace(e, weight=local_weight) for e in train], vectors, row_of, recipe)

        def apgr(scorer, rows):  # type: ignore[no-untyped-def]
            return evaluate(scorer([e.text for e in rows]), rows).apgr

        row = {
            "keyword": apgr(keyword, held),
            "unseen": apgr(unseen, held),
            "keyword@test": apgr(keyword, test),
            "unseen@test": apgr(unseen, test),
            "retrained": apgr(retrained, test),
            "mixed": apgr(mixed, test),
        }
        results[group] = row
        print(
            f"{group:<16}" + "".join(f"{row[k]:>{w}.3f}" for k, w in zip(row, WIDTHS, strict=True)),
            flush=True,
        )
    means = {k: float(np.mean([r[k] for r in results.values()])) for k in next(iter(results.values()))}
    print(f"{'mean':<16}" + "".join(f"{means[k]:>{w}.3f}" for k, w in zip(means, WIDTHS, strict=True)))
    hard = np.array([0 if r["level"] >= 4 else 1 for r in math_rows])
    full = Trained(examples, vectors, row_of, recipe)
    math_auc = {
        "keyword": auc_need_large(keyword(math_texts), hard),
        "rightsize": auc_need_large(full(math_texts), hard),
    }
    print(
        f"MATH-500 AUC (levels 4-5 vs 1-3): keyword {math_auc['keyword']:.3f}  "
        f"rightsize {math_auc['rightsize']:.3f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "apgr": results,
                    "mean": means,
                    "math500_auc": math_auc,
                    "labels": args.labels,
                    "seed": args.seed,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
