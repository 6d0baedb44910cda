"""Long-text strategies compared: a `joined` embedding cache derived from the head_tail one, and the
in-process latency of a ~2,000-token prompt under each strategy (interleaved A/B).

    python benchmarks/long_text.py cache [--dry-run]   # .cache/embeddings.npz -> .cache/embeddings.joined.npz
    python benchmarks/long_text.py latency [--repeat 30] [--json FILE]

Texts that fit in one window (<= 254 body tokens) embed identically under every strategy, so `cache`
copies their vectors and embeds only the long texts again. Quality: benchmarks/loso.py --long-text joined.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_classifier import LONG  # noqa: E402

from classifier.artifacts import resolve_embedder  # noqa: E402
from classifier.cache import cache_stamp, embed_cached, read_cache, text_key, write_cache  # noqa: E402
from classifier.data import read_examples, read_prompts  # noqa: E402
from classifier.embedding import Embedder, LongText  # noqa: E402
from classifier.paths import DEFAULT_MODEL_DIR, SHIPPED_EMBEDDER  # noqa: E402
from classifier.scoring import Scorer  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "routing"
CACHE = ROOT / ".cache" / "embeddings.npz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cache = commands.add_parser("cache", help="derive a cache for another strategy from the head_tail one")
    cache.add_argument("--data", type=Path, default=DATA)
    cache.add_argument("--source", type=Path, default=CACHE, help="head_tail cache (read only)")
    cache.add_argument("--long-text", choices=("joined", "truncate"), default="joined")
    cache.add_argument("--out", type=Path, help="default: .cache/embeddings.<long-text>.npz")
    cache.add_argument("--dry-run", action="store_true", help="count long texts and estimate, embed nothing")
    latency = commands.add_parser("latency", help="p50 ms of one ~2,000-token prompt, head_tail vs joined")
    latency.add_argument("--repeat", type=int, default=30, help="timed runs per strategy")
    latency.add_argument(
        "--pause-ms", type=float, default=50.0, help="idle time before each timed call (not timed)"
    )
    latency.add_argument("--json", type=Path)
    args = parser.parse_args()
    return derive_cache(args) if args.command == "cache" else compare_latency(args)


def corpus_texts(data: Path) -> list[str]:
    """Every text the training CLI and loso.py embed from `data`: train rows, and the prompts of the other
    files both raw (as loso.py reads math500) and through read_prompts (as calibration reads them)."""
    texts = {e.text for e in read_examples([data / "train.jsonl"])}
    for name in ("math500_levels.jsonl", "unlabeled_arena_hard.jsonl"):
        path = data / name
        texts.update(json.loads(line)["prompt"] for line in path.open() if line.strip())
        texts.update(p.text for p in read_prompts(path))
    return sorted(texts)


def derive_cache(args: argparse.Namespace) -> int:
    out = args.out or args.source.with_name(f"embeddings.{args.long_text}.npz")
    if out.resolve() in {args.source.resolve(), CACHE.resolve()}:
        raise SystemExit(f"refusing to overwrite {out}: the head_tail cache")
    head_tail = Embedder.from_path(SHIPPED_EMBEDDER, long_text="head_tail")
    target = Embedder.from_path(SHIPPED_EMBEDDER, long_text=args.long_text)
    stored = read_cache(args.source, cache_stamp(head_tail))
    if not stored:
        raise SystemExit(f"{args.source}: missing, or not a head_tail cache of {SHIPPED_EMBEDDER}")
    texts = corpus_texts(args.data)
    body = target.info.max_tokens - 2
    lengths = [len(e.ids) for e in target._tokenizer.encode_batch(texts, add_special_tokens=False)]
    keys = [text_key(t) for t in texts]
    long_texts = [t for t, n in zip(texts, lengths, strict=True) if n > body]
    reused = {k: stored[k] for k, n in zip(keys, lengths, strict=True) if n <= body and k in stored}
    uncached = sum(1 for k, n in zip(keys, lengths, strict=True) if n <= body and k not in stored)
    print(
        f"{len(texts)} texts ({len(stored)} in {args.source.name}): {len(long_texts)} longer than {body} "
        f"tokens to embed again, {len(reused)} short ones copied, {uncached} short ones not in the cache"
    )
    started = time.perf_counter()
    target.embed(long_texts[:64])
    per_text = (time.perf_counter() - started) / max(1, min(64, len(long_texts)))
    print(f"estimate: {per_text * 1000:.0f} ms per long text, {per_text * len(long_texts):.0f} s in all")
    if args.dry_run:
        return 0
    write_cache(out, cache_stamp(target), reused)  # the seed; embed_cached adds what is missing
    started = time.perf_counter()
    embed_cached(target, texts, out)
    count = len(read_cache(out, cache_stamp(target)))
    print(f"wrote {out} ({count} vectors) in {time.perf_counter() - started:.0f}s")
    return 0


def compare_latency(args: argparse.Namespace) -> int:
    scorers: dict[LongText, Scorer] = {"head_tail": Scorer.from_path(DEFAULT_MODEL_DIR)}
    joined = Scorer.from_path(DEFAULT_MODEL_DIR)
    embedder_dir = resolve_embedder(DEFAULT_MODEL_DIR, joined.manifest.embedder)
    joined.embedder = Embedder.from_path(embedder_dir, long_text="joined")
    scorers["joined"] = joined
    tokens = len(joined.embedder._tokenizer.encode(LONG, add_special_tokens=False).ids)
    for scorer in scorers.values():  # warm-up
        for _ in range(5):
            scorer.score([LONG])
    timings: dict[str, list[float]] = {name: [] for name in scorers}
    for run in range(args.repeat):
        # ABBA order, so neither strategy always runs first after the other.
        order = list(scorers) if run % 2 == 0 else list(reversed(list(scorers)))
        for name in order:
            # Each session's onnxruntime pool spins for a while after a run; without a pause it competes
            # with the other strategy's run for the 2 cores (+7 ms on joined, measured).
            time.sleep(args.pause_ms / 1000)
            start = time.perf_counter()
            scorers[name].score([LONG])
            timings[name].append((time.perf_counter() - start) * 1000)
    results = {
        name: {
            "p50_ms": statistics.median(values),
            "p90_ms": float(np.percentile(values, 90)),
            "min_ms": min(values),
            "runs": len(values),
        }
        for name, values in timings.items()
    }
    print(
        f"one {tokens}-token prompt, Scorer.score, threads=None, {args.repeat} interleaved runs each, "
        f"{args.pause_ms:.0f} ms apart"
    )
    for name, figures in results.items():
        print(
            f"  {name:<10} p50 {figures['p50_ms']:6.1f} ms  p90 {figures['p90_ms']:6.1f} ms  "
            f"min {figures['min_ms']:6.1f} ms"
        )
    if args.json:
        summary = {"long_tokens": tokens, "pause_ms": args.pause_ms, **results}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
