"""Does the int8 embedder keep routing quality? The same head scores a sample with fp32 and int8 embeddings.

The shipped head is trained on int8 embeddings (the recipe's `embedder`); fp32 is the parity export.

python benchmarks/int8_check.py [--rows 3000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.data import read_examples  # noqa: E402
from classifier.embedding import VARIANT_FILES  # noqa: E402
from classifier.evaluation import evaluate  # noqa: E402
from classifier.paths import DEFAULT_MODEL_DIR  # noqa: E402
from classifier.scoring import Scorer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing" / "train.jsonl"
    )
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    examples = read_examples([args.data])
    sample = random.Random(0).sample(examples, min(args.rows, len(examples)))
    texts = [e.text for e in sample]
    results = {}
    scores = {}
    for name, file in VARIANT_FILES.items():
        scorer = Scorer.from_path(DEFAULT_MODEL_DIR, embedder_file=file)
        scores[name] = scorer.score(texts).astype(np.float64)
        report = evaluate(scores[name], sample)
        results[name] = {"auc": report.auc, "apgr": report.apgr, "cpt50": report.cpt50}
    from scipy.stats import spearmanr

    thresholds = Scorer.from_path(DEFAULT_MODEL_DIR).manifest.suggested_thresholds
    flips = {k: float(np.mean((scores["fp32"] >= t) != (scores["int8"] >= t))) for k, t in thresholds.items()}
    results["spearman"] = float(spearmanr(scores["fp32"], scores["int8"]).statistic)
    results["max_abs_score_diff"] = float(np.abs(scores["fp32"] - scores["int8"]).max())
    results["decisions_flipped_at_suggested_thresholds"] = flips
    print(f"{len(sample)} rows of {args.data.name}")
    for name in ("fp32", "int8"):
        r = results[name]
        print(f"{name}: AUC {r['auc']:.4f}  APGR {r['apgr']:.4f}  CPT(50%) {r['cpt50']:.4f}")
    print(
        f"Spearman {results['spearman']:.4f}; max |score diff| {results['max_abs_score_diff']:.4f}; "
        f"decisions flipped {', '.join(f'{k}: {v:.2%}' for k, v in flips.items())}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
