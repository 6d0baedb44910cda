"""Three-fold per-pair retraining through the real CLI, as a team would do it, beside a plain model.

For one model pair of each source in ../shared/data/routing/train.jsonl (at most --max-prompts prompts,
seeded sample), the prompts are split in three. For each fold, `rightsize train --data` learns from the
other two thirds, written with only `prompt`, `small_ok`, `small_score` and `large_score` (the README's
documented fields: no `scale`, no `source`), and `rightsize score --model` scores the held-out third.
The same folds also train a plain class-balanced logistic regression (C=1) on the MiniLM embeddings,
label 1 - small_ok. APGR is pooled over the three folds of a pair (0.5 = random routing).

    python benchmarks/threefold_cli.py [--max-prompts 900] [--json FILE] [--recipe auto|shipped]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.learning_curve import plain  # noqa: E402
from benchmarks.loso import EMBEDDER, default_cache  # noqa: E402
from classifier.cache import embed_cached  # noqa: E402
from classifier.data import Example, read_examples  # noqa: E402
from classifier.embedding import VARIANT_FILES, Embedder  # noqa: E402
from classifier.evaluation import evaluate  # noqa: E402
from classifier.training import Recipe  # noqa: E402

# One pair per source, like the public pairs (small model vs large model).
PAIRS = {
    "arena_bench_v1": ("mistralai/Mistral-7B-Instruct-v0.1", "gpt-4-0314"),
    "routellm_gsm8k": ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"),
    "routellm_mmlu": ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"),
    "routerbench_arc-challenge": ("mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"),
    "routerbench_mbpp": ("mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"),
    "routerbench_winogrande": ("mistralai/mistral-7b-chat", "gpt-4-1106-preview"),
    "zeroeval_gsm": ("Meta-Llama-3-8B-Instruct", "gpt-4o-2024-05-13"),
}
FIELDS = ("prompt", "small_ok", "small_score", "large_score")


class Embeddings:
    """Texts -> vectors from the benchmarks' embedding cache (what the CLI embeds, same stamp)."""

    def __init__(self, cache: Path, texts: list[str]):
        recipe = Recipe()
        embedder = Embedder.from_path(
            EMBEDDER, variant=VARIANT_FILES[recipe.embedder], long_text=recipe.long_text
        )
        self.row_of = {t: i for i, t in enumerate(texts)}
        self.vectors = embed_cached(embedder, texts, cache)

    def emb(self, texts: list[str]) -> np.ndarray:
        return self.vectors[[self.row_of[t] for t in texts]]


def pair_rows(data: Path, max_prompts: int, seed: int) -> dict[str, list[dict[str, object]]]:
    rows: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line in (data / "train.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        scores = np.array([row["small_score"], row["large_score"]], dtype=float)
        if (
            PAIRS.get(row["source"]) == (row["small_model"], row["large_model"])
            and not np.isnan(scores).any()
        ):
            rows[row["source"]].append(row)
    for source, kept in rows.items():
        random.Random(seed).shuffle(kept)
        rows[source] = kept[:max_prompts]
    return rows


def run_cli(args: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ rightsize {' '.join(args)}\n")
        out.flush()
        subprocess.run([sys.executable, "-m", "router", *args], check=True, stdout=out, stderr=out)


def run_pair(
    source: str, rows: list[dict[str, object]], work: Path, args: argparse.Namespace, emb: Embeddings
):
    """Pooled out-of-fold figures of the CLI-trained model and the plain model, and each fold's recipe."""
    folds = [rows[k::3] for k in range(3)]
    cli_scores: dict[str, float] = {}
    plain_scores: dict[str, float] = {}
    chosen = []
    for k in range(3):
        train = [r for j in range(3) if j != k for r in folds[j]]
        held = folds[k]
        folder = work / f"{source}.{k}"
        folder.mkdir()
        train_file, test_file, scores_file = (
            folder / "train.jsonl",
            folder / "test.jsonl",
            folder / "scores.jsonl",
        )
        train_file.write_text("".join(json.dumps({f: r[f] for f in FIELDS}) + "\n" for r in train))
        test_file.write_text(
            "".join(json.dumps({"id": str(i), "prompt": r["prompt"]}) + "\n" for i, r in enumerate(held))
        )
        recipe = ["--recipe", args.recipe] if args.recipe else []
        run_cli(
            [
                "train",
                "--data",
                str(train_file),
                "--out",
                str(folder / "model"),
                "--embedding-cache",
                str(args.cache),
                *recipe,
            ],
            work / "cli.log",
        )
        run_cli(
            [
                "score",
                "--model",
                str(folder / "model"),
                "--input",
                str(test_file),
                "--output",
                str(scores_file),
            ],
            work / "cli.log",
        )
        for line in scores_file.read_text().splitlines():
            scored = json.loads(line)
            cli_scores[str(held[int(scored["id"])]["prompt"])] = float(scored["score"])
        manifest = json.loads((folder / "model" / "manifest.json").read_text())
        chosen.append(
            manifest.get("metrics", {}).get("recipe_selection", {}).get("chosen", manifest["recipe"]["label"])
        )
        train_examples = read_examples([train_file])
        score = plain(train_examples, emb)
        plain_scores.update(
            zip([str(r["prompt"]) for r in held], score([str(r["prompt"]) for r in held]), strict=True)
        )
    everything = [r for f in folds for r in f]
    scratch = work / f"{source}.all.jsonl"
    scratch.write_text("".join(json.dumps({f: r[f] for f in FIELDS}) + "\n" for r in everything))
    test_examples: list[Example] = read_examples([scratch])
    texts = [e.text for e in test_examples]
    cli = evaluate(np.array([cli_scores[t] for t in texts]), test_examples)
    base = evaluate(np.array([plain_scores[t] for t in texts]), test_examples)
    return {
        "prompts": len(rows),
        "cli": {"apgr": cli.apgr, "auc": cli.auc},
        "plain": {"apgr": base.apgr, "auc": base.auc},
        "chosen": chosen,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    parser.add_argument("--cache", type=Path, default=default_cache(Recipe().long_text, Recipe().embedder))
    parser.add_argument("--max-prompts", type=int, default=900)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", choices=("auto", "shipped"), default=None, help="passed to train")
    parser.add_argument("--sources", nargs="*", default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = pair_rows(args.data, args.max_prompts, args.seed)
    texts = sorted({str(r["prompt"]) for kept in rows.values() for r in kept})
    emb = Embeddings(args.cache, texts)
    results = {}
    with tempfile.TemporaryDirectory(prefix="threefold.") as tmp:
        for source in sorted(args.sources or rows):
            started = time.perf_counter()
            results[source] = run_pair(source, rows[source], Path(tmp), args, emb)
            r = results[source]
            cli, base = r["cli"], r["plain"]
            print(
                f"{source:<28} {r['prompts']:>4} prompts  CLI APGR {cli['apgr']:.3f} AUC {cli['auc']:.3f}"
                f"  plain APGR {base['apgr']:.3f} AUC {base['auc']:.3f}"
                f"  ({time.perf_counter() - started:.0f}s)  chosen {r['chosen']}",
                flush=True,
            )
        if os.environ.get("THREEFOLD_KEEP_LOG"):
            print((Path(tmp) / "cli.log").read_text())
    mean = {m: float(np.mean([r[m]["apgr"] for r in results.values()])) for m in ("cli", "plain")}
    sd = {m: float(np.std([r[m]["apgr"] for r in results.values()])) for m in ("cli", "plain")}
    print(
        f"mean APGR over {len(results)} pairs: CLI {mean['cli']:.3f} (sd {sd['cli']:.3f}),"
        f" plain {mean['plain']:.3f} (sd {sd['plain']:.3f})"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"pairs": results, "mean_apgr": mean, "sd_apgr": sd}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
