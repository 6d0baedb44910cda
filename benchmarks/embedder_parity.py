"""Cosine of an embedder variant to the fp32 graph, on the test parity corpus, on this CPU.

Runs under an emulated CPU too, which is how the AVX2-only figures in the README were measured (the
emulated speed means nothing; the cosines do):

    python benchmarks/embedder_parity.py [--variant model.int8.onnx] [--limit 60] [--option KEY=VALUE]
    qemu-x86_64 -cpu Haswell-noTSX $(which python) benchmarks/embedder_parity.py --limit 60 --save avx2.npz
    python benchmarks/embedder_parity.py --limit 60 --compare avx2.npz   # the same vectors across CPUs?

`--reference FILE` takes the fp32 vectors from a saved run instead of computing them (fp32 agrees across
CPUs to cosine > 0.99999; under emulation this halves the time).

`--option session.x64quantprecision=1` adds an onnxruntime session config entry to the variant's session.
`--embedder DIR` measures another export (e.g. a candidate written by `python -m classifier.export`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.cpu import cpu_features  # noqa: E402
from classifier.embedding import Embedder, read_embedder_info, session_options  # noqa: E402
from classifier.paths import SHIPPED_EMBEDDER  # noqa: E402
from tests.classifier.test_embedding import SHORT_STRINGS, parity_corpus  # noqa: E402


def load(directory: Path, variant: str, options: list[str]) -> Embedder:
    """The embedder of `directory/variant`, with extra session config entries (KEY=VALUE)."""
    if not options:
        return Embedder.from_path(directory, variant=variant, long_text="truncate")
    import onnxruntime as ort
    from tokenizers import Tokenizer

    settings = session_options()
    for option in options:
        key, _, value = option.partition("=")
        settings.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(directory / variant), settings, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return Embedder(session, tokenizer, read_embedder_info(directory), "truncate", variant)


def short_prompt_ms(embedders: list[Embedder], repeat: int) -> list[float]:
    """Median ms to embed one short prompt with each embedder, calls interleaved (a loaded machine slows
    all of them alike, so the ratios hold better than the absolute figures)."""
    text = ["Summarise this article in three bullet points."]
    times: list[list[float]] = [[] for _ in embedders]
    for embedder in embedders:
        embedder.embed(text)
    for _ in range(repeat):
        for index, embedder in enumerate(embedders):
            start = time.perf_counter()
            embedder.embed(text)
            times[index].append((time.perf_counter() - start) * 1000)
    return [float(np.median(t)) for t in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", type=Path, default=SHIPPED_EMBEDDER)
    parser.add_argument("--variant", default="model.int8.onnx")
    parser.add_argument("--option", action="append", default=[], help="onnxruntime KEY=VALUE")
    parser.add_argument("--limit", type=int, help="only every k-th text, about this many")
    parser.add_argument("--repeat", type=int, default=200, help="short-prompt timings (0: none)")
    parser.add_argument("--save", type=Path, help="write the vectors (npz) for --compare on another CPU")
    parser.add_argument("--compare", type=Path, help="cosine of this CPU's vectors to a saved run's")
    parser.add_argument("--reference", type=Path, help="fp32 vectors of a saved run (same --limit)")
    args = parser.parse_args()
    texts = parity_corpus()
    if args.limit:
        texts = texts[:: max(1, len(texts) // args.limit)][: args.limit]
    fp32 = Embedder.from_path(args.embedder, long_text="truncate")
    variant = load(args.embedder, args.variant, args.option)
    if args.reference:
        saved = np.load(args.reference)
        reference, alone_ref = saved["fp32"], saved["fp32_alone"]
    else:
        reference = fp32.embed(texts)
        alone_ref = np.vstack([fp32.embed([t]) for t in SHORT_STRINGS])
    ours = variant.embed(texts)
    alone = np.vstack([variant.embed([t]) for t in SHORT_STRINGS])
    cosine = (ours * reference).sum(axis=1)
    short = (alone * alone_ref).sum(axis=1)
    features = cpu_features()
    result = {
        "cpu": ", ".join(name for name, present in features.items() if present) or "none detected",
        "variant": args.variant,
        "options": args.option,
        "texts": len(texts),
        "batched_mean": round(float(cosine.mean()), 5),
        "batched_worst": round(float(cosine.min()), 5),
        "worst_text": texts[int(np.argmin(cosine))][:60],
        "short_alone_worst": round(float(short.min()), 5),
        "short_alone_worst_text": SHORT_STRINGS[int(np.argmin(short))],
    }
    if args.repeat:
        fp32_ms, variant_ms = short_prompt_ms([fp32, variant], args.repeat)
        result["short_prompt_ms_fp32"] = round(fp32_ms, 3)
        result["short_prompt_ms_variant"] = round(variant_ms, 3)
        result["variant_speedup"] = round(fp32_ms / variant_ms, 2)
    if args.compare:
        saved = np.load(args.compare)
        result["vs_saved_variant_worst"] = round(float((saved["variant"] * ours).sum(axis=1).min()), 6)
        result["vs_saved_fp32_worst"] = round(float((saved["fp32"] * reference).sum(axis=1).min()), 6)
    if args.save:
        np.savez(args.save, variant=ours, fp32=reference, fp32_alone=alone_ref)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
