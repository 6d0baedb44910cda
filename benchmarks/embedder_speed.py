"""Speed of each embedder file the embedder ships, side by side on this CPU, as ratios to int8.

    python benchmarks/embedder_speed.py [--rounds 12] [--json FILE]

Three shapes: one short prompt per call back to back (what the in-process figures of bench_service.py
measure), one short prompt per call with 3 ms of sleep before each (what a lone request sees: the weights
have left the caches the previous call warmed), and batches of 16 (what a busy server runs). Each round
times every file in a block of calls, rounds alternate files, and the ratio is the median over rounds of
int8's block median / the file's: a loaded machine slows neighbouring blocks alike, so the ratios hold
better than the milliseconds. The parity of the files is `benchmarks/embedder_parity.py`'s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.autotune import PROBE_PROMPTS  # noqa: E402
from classifier.cpu import describe_cpu  # noqa: E402
from classifier.embedding import VARIANT_FILES, Embedder, read_embedder_info  # noqa: E402
from classifier.paths import SHIPPED_EMBEDDER  # noqa: E402

PROMPTS = PROBE_PROMPTS[:4]  # the start-up tuning's own probes: short, varied
# (name, texts of call i, calls per block, seconds slept before each call)
SHAPES: list[tuple[str, Callable[[int], list[str]], int, float]] = [
    ("short prompt, back to back", lambda i: [PROMPTS[i % 4]], 60, 0.0),
    ("short prompt, 3 ms apart", lambda i: [PROMPTS[i % 4]], 60, 0.003),
    ("batch of 16", lambda i: PROMPTS * 4, 10, 0.0),
]


def block_ms(embedder: Embedder, texts: Callable[[int], list[str]], calls: int, gap_s: float) -> float:
    samples = []
    for i in range(calls):
        if gap_s:
            time.sleep(gap_s)
        started = time.perf_counter()
        embedder.embed(texts(i))
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", type=Path, default=SHIPPED_EMBEDDER)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    listed = read_embedder_info(args.embedder).files
    files: dict[str, str] = {name: file for name, file in VARIANT_FILES.items() if file in listed}
    names = list(files)
    embedders = {name: Embedder.from_path(args.embedder, variant=file) for name, file in files.items()}
    results: dict[str, object] = {"cpu": describe_cpu(), "rounds": args.rounds, "shapes": {}}
    print(f"{describe_cpu()}; {args.rounds} rounds; ms = median over rounds, x = speed relative to int8")
    for shape, texts, calls, gap_s in SHAPES:
        blocks: dict[str, list[float]] = {name: [] for name in names}
        for embedder in embedders.values():
            embedder.embed(texts(0))
        for _ in range(args.rounds):
            for name, embedder in embedders.items():
                blocks[name].append(block_ms(embedder, texts, calls, gap_s))
        row = {name: {"ms": round(statistics.median(values), 3)} for name, values in blocks.items()}
        for name, values in blocks.items():
            paired = [int8 / value for int8, value in zip(blocks["int8"], values, strict=True)]
            row[name]["x_int8"] = round(statistics.median(paired), 3)
        results["shapes"][shape] = row  # type: ignore[index]
        cells = [f"{name} {r['ms']:.2f} ms (x{r['x_int8']:.2f})" for name, r in row.items()]
        print(f"{shape:<28} " + "  ".join(cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
