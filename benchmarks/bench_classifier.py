"""In-process classifier speed: one short prompt, a 2,000-token prompt, and batch throughput, side by side
with the same embedding through sentence-transformers/torch (when the [export] extra is installed).

    python benchmarks/bench_classifier.py [--smoke] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.embedding import VARIANT_FILES  # noqa: E402
from classifier.paths import DEFAULT_MODEL_DIR  # noqa: E402
from classifier.scoring import Scorer  # noqa: E402

SHORT = "Turn this sentence into JSON: 'John is 35 and lives in Paris with his two cats.'"  # 22 tokens
LONG = (
    "Design a fault-tolerant, multi-region payment ledger; explain consistency, idempotency and audit. " * 110
)


def batch_prompts(count: int) -> list[str]:
    """Realistic short prompts (8-60 tokens), all distinct."""
    stems = [
        "Extract the name and age from: '{i} year old Maria from Lisbon'",
        "Classify the sentiment of this review #{i}: the battery lasts two days, great value",
        "Rewrite this email to sound friendlier (ticket {i}): we cannot refund you",
        "Write a Python function that merges {i} sorted lists and explain its complexity",
        "What is the capital of country number {i} in the UN list?",
    ]
    return [stems[i % len(stems)].format(i=i) for i in range(count)]


def latencies_ms(fn: Callable[[], object], repeat: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p99": float(np.percentile(values, 99))}


def throughput(fn: Callable[[list[str]], object], prompts: list[str], batch: int) -> float:
    fn(prompts[:batch])
    start = time.perf_counter()
    for i in range(0, len(prompts), batch):
        fn(prompts[i : i + batch])
    return len(prompts) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the code alive in CI")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    repeat, count = (5, 32) if args.smoke else (300, 1024)

    scorer = Scorer.from_path(DEFAULT_MODEL_DIR)
    tokens = len(scorer.embedder._tokenizer.encode(LONG, add_special_tokens=False).ids)
    results: dict[str, object] = {
        "machine": f"{os.cpu_count()} cores, {platform_name()}",
        "short_tokens": len(scorer.embedder._tokenizer.encode(SHORT).ids),
        "long_tokens": tokens,
        "rightsize_short_ms": summary(latencies_ms(lambda: scorer.score([SHORT]), repeat)),
        "rightsize_long_ms": summary(latencies_ms(lambda: scorer.score([LONG]), max(3, repeat // 10))),
        "rightsize_batch_per_s": throughput(scorer.score, batch_prompts(count), 64),
        "embedder": scorer.embedder.variant,
    }
    # The same head on the fp32 parity export (scoring.embedder: fp32).
    fp32 = Scorer.from_path(DEFAULT_MODEL_DIR, embedder_file=VARIANT_FILES["fp32"])
    results["fp32_short_ms"] = summary(latencies_ms(lambda: fp32.score([SHORT]), repeat))
    results["fp32_long_ms"] = summary(latencies_ms(lambda: fp32.score([LONG]), max(3, repeat // 10)))
    results["fp32_batch_per_s"] = throughput(fp32.score, batch_prompts(count), 64)
    keyword = litellm_keyword_router()
    results["litellm_keyword_short_ms"] = summary(latencies_ms(lambda: keyword(SHORT), repeat))
    results["litellm_keyword_long_ms"] = summary(latencies_ms(lambda: keyword(LONG), max(3, repeat // 10)))
    reference = sentence_transformers_model()
    if reference is not None:

        def encode(texts: list[str]) -> object:
            return reference.encode(texts, normalize_embeddings=True, batch_size=64)

        results["torch_short_ms"] = summary(latencies_ms(lambda: encode([SHORT]), repeat))
        results["torch_long_ms"] = summary(latencies_ms(lambda: encode([LONG]), max(3, repeat // 10)))
        results["torch_batch_per_s"] = throughput(encode, batch_prompts(count), 64)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def litellm_keyword_router() -> Callable[[str], object]:
    """LiteLLM's keyword `complexity_router`, decision only, in this process (no LLM call)."""
    from router.backends.litellm import import_litellm

    import_litellm()  # as the service does (offline price map, no ./.env)
    from litellm.router_strategy.complexity_router.complexity_router import ComplexityRouter

    router = ComplexityRouter(model_name="bench", litellm_router_instance=None)
    return router.classify


def sentence_transformers_model():  # type: ignore[no-untyped-def]
    try:
        from classifier.export import load_sentence_transformer

        return load_sentence_transformer()
    except Exception:  # the [export] extra is optional
        return None


def platform_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_table(results: dict) -> None:  # type: ignore[type-arg]
    print(f"machine: {results['machine']}")
    served = f"rightsize ({results['embedder']})"
    print(f"{'figure':<44}{served:>26}{'fp32':>8}{'sentence-transformers':>24}{'ratio':>8}{'fp32':>8}")
    rows = [
        (f"1 short prompt ({results['short_tokens']} tokens), p50 ms", "short_ms", "p50", False),
        ("1 short prompt, p99 ms", "short_ms", "p99", False),
        (f"1 long prompt ({results['long_tokens']} tokens), p50 ms", "long_ms", "p50", False),
        ("batch of short prompts, prompts/s", "batch_per_s", None, True),
    ]
    for label, key, stat, higher_better in rows:
        values = [results.get(f"{who}_{key}") for who in ("rightsize", "fp32", "torch")]
        ours_v, fp32_v, theirs_v = ((v[stat] if stat else v) if v is not None else None for v in values)

        def ratio(mine: float | None, theirs: float | None = theirs_v, up: bool = higher_better) -> str:
            if mine is None or theirs is None:
                return ""
            return f"{(mine / theirs if up else theirs / mine):.1f}x"

        theirs_s = "n/a" if theirs_v is None else f"{theirs_v:.1f}"
        print(f"{label:<44}{ours_v:>26.1f}{fp32_v:>8.1f}{theirs_s:>24}{ratio(ours_v):>8}{ratio(fp32_v):>8}")
    print(
        "ratio = how many times faster rightsize (served, then fp32) is. On the long prompt"
        " sentence-transformers reads the first 256 tokens; rightsize reads the first and last 127 in one"
        " window (long_text: joined)."
    )
    short, long = results["litellm_keyword_short_ms"], results["litellm_keyword_long_ms"]
    print(
        f"LiteLLM keyword complexity_router, decision only: short p50 {short['p50']:.3f} ms, "
        f"long p50 {long['p50']:.3f} ms (keyword rules, no model: faster, and see quality.txt for routing)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
