"""Escalations teach the small model: a stream of one task where every escalated answer becomes an exemplar.

    python benchmarks/cascade_stream.py [--items 300] [--family extract] [--json FILE] [--png FILE]

The stream is `--items` prompts of one task family (benchmarks/cascade_tasks.py, seed `--seed`), answered in
order by SmolLM2-135M (in-process llama.cpp with the embedded tier's serve defaults, see cascade_data.py)
in cascade mode: the small answer is verified (the form checks, then the answer head of `--verifier` below
`--threshold`); a failed one is escalated to a large stand-in that always answers correctly (the gold
answer). The large answer after an escalation is then an exemplar for the rest of the stream, exactly as
router.fewshot serves approved large answers: embedded with the routing embedder, the top `k` above
`min_similarity` within `max_tokens` (router.fewshot.settings.FewShotSettings defaults), injected by
router.fewshot.inject as prior user/assistant turns. Reported per block of 100: the escalation rate, the
small answers' accuracy when kept, and the final accuracy (escalated answers are right). Control: the last
block is also answered without exemplars, so a drop is the exemplars' doing, not easier prompts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.cascade_data import (  # noqa: E402
    SERVE_DEFAULTS,
    InProcess,
    fewshot_messages,
    item_id,
    item_seed,
)
from benchmarks.cascade_tasks import MAKERS, TaskItem, grade  # noqa: E402
from classifier.answer import AnswerInput, AnswerScorer, TokenLogprob, form_verdict  # noqa: E402
from router.fewshot import Exemplar, ExemplarStore  # noqa: E402

BLOCK = 100


def stream_items(family: str, count: int, seed: int) -> list[TaskItem]:
    rng = random.Random(seed)
    seen: dict[str, TaskItem] = {}
    for _ in range(count * 50):
        if len(seen) >= count:
            break
        item = MAKERS[family](rng)
        seen.setdefault(item.prompt, item)
    return list(seen.values())


def large_answer(item: TaskItem) -> str:
    """What the always-right large stand-in replies: the gold answer, as the task asks for it."""
    return item.gold


def verdict(
    scorer: AnswerScorer, item: TaskItem, result: dict[str, Any], threshold: float, exemplars: int = 0
) -> tuple[bool, float]:
    """(keep the small answer, the head's P(good)); the form checks run first, as in the cascade."""
    form = form_verdict(
        result["answer"], finish_reason=result["finish_reason"], completion_tokens=result["completion_tokens"]
    )
    tokens = tuple(TokenLogprob(t[1], t[3], t[0]) for t in result["tokens"]) or None
    answer = AnswerInput(
        item.prompt,
        result["answer"],
        result["finish_reason"],
        result["completion_tokens"],
        tokens,
        exemplars=exemplars,
    )
    p_good = scorer.score([answer])[0]
    return form.ok and p_good >= threshold, float(p_good)


def run(args: argparse.Namespace) -> dict[str, Any]:
    scorer = AnswerScorer.from_path(args.verifier, threads=1)
    embedder = scorer.embedder
    model = InProcess(args.model, args.threads)
    items = stream_items(args.family, args.items, args.seed)
    exemplars: list[Exemplar] = []
    vectors: list[np.ndarray] = []
    rows = []
    for index, item in enumerate(items):
        vector = embedder.embed([item.prompt])[0]
        store = ExemplarStore.from_embedded(exemplars, np.stack(vectors)) if exemplars else None
        payload, shots = fewshot_messages(item, vector, store)
        result = model.chat_messages(payload, dict(SERVE_DEFAULTS), item_seed(item, 0))
        keep, p_good = verdict(scorer, item, result, args.threshold, shots)
        row = {
            "index": index,
            "exemplars": shots,
            "p_good": round(p_good, 4),
            "escalated": not keep,
            "small_correct": grade(item, result["answer"]),
        }
        if not keep:
            exemplars.append(
                Exemplar(f"e{index}", item.prompt, large_answer(item), "logs", request_id=item_id(item))
            )
            vectors.append(vector)
        if index >= len(items) - BLOCK:  # control: the same prompt without exemplars
            plain = [{"role": "system", "content": item.system}, {"role": "user", "content": item.prompt}]
            control = model.chat_messages(plain, dict(SERVE_DEFAULTS), item_seed(item, 0))
            control_keep, _ = verdict(scorer, item, control, args.threshold)
            row["control_escalated"] = not control_keep
            row["control_small_correct"] = grade(item, control["answer"])
        rows.append(row)
        if (index + 1) % 25 == 0:
            print(
                f"{index + 1}/{len(items)} escalated so far {sum(r['escalated'] for r in rows)}", flush=True
            )
    return {"family": args.family, "items": len(items), "threshold": args.threshold,
            "verifier": scorer.version, "blocks": blocks(rows), "rows": rows}  # fmt: skip


def _block_figures(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    escalated = np.array([r[f"{prefix}escalated"] for r in rows])
    correct = np.array([r[f"{prefix}small_correct"] for r in rows])
    final = np.where(escalated, True, correct)
    return {
        "escalation_rate": round(float(escalated.mean()), 3),
        "final_accuracy": round(float(final.mean()), 3),
        "small_accuracy": round(float(correct.mean()), 3),
        "kept_accuracy": round(float(correct[~escalated].mean()), 3) if (~escalated).any() else None,
    }


def blocks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for start in range(0, len(rows), BLOCK):
        chunk = rows[start : start + BLOCK]
        out[f"{start + 1}-{start + len(chunk)}"] = {
            **_block_figures(chunk),
            "with_exemplars": round(float(np.mean([r["exemplars"] > 0 for r in chunk])), 3),
        }
    last = [r for r in rows if "control_escalated" in r]
    if last:
        out["last block, no exemplars (control)"] = _block_figures(last, "control_")
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    window = 50
    escalated = np.array([r["escalated"] for r in rows], dtype=float)
    final = np.array([1.0 if r["escalated"] else float(r["small_correct"]) for r in rows])
    kernel = np.ones(window) / window
    x = np.arange(window, len(rows) + 1)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    axes.plot(x, np.convolve(escalated, kernel, "valid"), label="escalation rate")
    axes.plot(x, np.convolve(final, kernel, "valid"), label="final accuracy")
    control = result["blocks"].get("last block, no exemplars (control)")
    if control:
        axes.axhline(
            control["escalation_rate"], ls="--", color="C0", alpha=0.6, label="last block without exemplars"
        )
    axes.set_xlabel(f"prompt in the stream ({result['family']}; moving mean over {window})")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title("Escalated large answers as few-shot exemplars")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="extract", choices=sorted(MAKERS))
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1717)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--verifier", type=Path, default=ROOT / "models" / "verifier")
    parser.add_argument("--threshold", type=float, default=0.5, help="escalate below this P(good)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    result = run(args)
    for name, figures in result["blocks"].items():
        print(f"{name:<36}" + "  ".join(f"{k} {v}" for k, v in figures.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.png:
        plot(result, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
