"""Do the int8 embedders keep routing quality? The same head scores a sample with each file's embeddings.

The shipped head is trained on int8 embeddings (the recipe's `embedder`); fp32 is the parity export.

python benchmarks/int8_check.py [--rows 3000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

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
    results: dict[str, dict[str, Any]] = {}
    scores = {}
    for name, file in VARIANT_FILES.items():
        scorer = Scorer.from_path(DEFAULT_MODEL_DIR, embedder_file=file)
        scores[name] = scorer.score(texts).astype(np.float64)
        report = evaluate(scores[name], sample)
        results[name] = {"auc": report.auc, "apgr": report.apgr, "cpt50": report.cpt50}
    from scipy.stats import spearmanr

    thresholds = Scorer.from_path(DEFAULT_MODEL_DIR).manifest.suggested_thresholds
    print(f"{len(sample)} rows of {args.data.name}")
    for name in scores:
        r = results[name]
        print(f"{name}: AUC {r['auc']:.4f}  APGR {r['apgr']:.4f}  CPT(50%) {r['cpt50']:.4f}")
    for name in [n for n in scores if n != "fp32"]:  # each quantised file against fp32
        flips = {
            k: float(np.mean((scores["fp32"] >= t) != (scores[name] >= t))) for k, t in thresholds.items()
        }
        results[name]["spearman_to_fp32"] = float(spearmanr(scores["fp32"], scores[name]).statistic)
        results[name]["max_abs_score_diff"] = float(np.abs(scores["fp32"] - scores[name]).max())
        results[name]["decisions_flipped_at_suggested_thresholds"] = flips
        print(
            f"{name} vs fp32: Spearman {results[name]['spearman_to_fp32']:.4f}; max |score diff| "
            f"{results[name]['max_abs_score_diff']:.4f}; decisions flipped "
            + ", ".join(f"{k}: {v:.2%}" for k, v in flips.items())
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
