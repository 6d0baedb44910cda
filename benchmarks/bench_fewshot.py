"""The few-shot lift, measured: SmolLM2-135M extracting price and currency, with and without exemplars.

    python benchmarks/bench_fewshot.py [--smoke] [--test-items 30] [--json FILE]

The task has one exact answer per item: `{"price": 12.5, "currency": "EUR"}`, graded by parsing the first JSON
object of the reply. Items are synthetic and deterministic (`--seed`): varied sentences, symbols (€, $, £),
codes and currency words. The exemplar pool (the large tier's approved answers, here the gold answers) and
the held-out test items are separate splits, with no sentence in both. Exemplars are chosen exactly as the
router does (router.fewshot: the routing embedder's vectors, top-k above the floor, within the token
budget). The model runs in llama.cpp (`llama_cpp.server`, the [local] extra) at temperature 0, one thread.

Also measured: brute-force top-k search time over 1k..100k exemplars, and how the token estimate behind
`max_tokens` compares with the tokens llama.cpp actually counted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from router.domain import Message  # noqa: E402
from router.fewshot import Exemplar, ExemplarStore, Query, Selection, inject  # noqa: E402

SYSTEM = (
    "Extract the price and the currency from the sentence. Reply with JSON only, like "
    '{"price": 9.99, "currency": "USD"}, using the ISO 4217 currency code.'
)
PROMPT = "Extract the price and currency as JSON: '{sentence}'"
# ISO code -> how sentences write it: (symbol before the number or None, words after it)
CURRENCIES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "EUR": ("€", ("EUR", "euros")),
    "USD": ("$", ("USD", "dollars")),
    "GBP": ("£", ("GBP", "pounds")),
    "JPY": ("¥", ("JPY", "yen")),
    "CHF": (None, ("CHF", "Swiss francs")),
    "CAD": (None, ("CAD", "Canadian dollars")),
    "SEK": (None, ("SEK", "Swedish kronor")),
    "INR": ("₹", ("INR", "rupees")),
}
ITEMS = (
    "kettle",
    "bicycle",
    "laptop",
    "desk lamp",
    "pair of boots",
    "coffee grinder",
    "backpack",
    "tent",
    "phone case",
    "winter jacket",
    "blender",
    "office chair",
    "keyboard",
    "wristwatch",
    "sofa",
    "camera lens",
    "board game",
    "rice cooker",
    "umbrella",
    "guitar",
    "mattress",
    "drone",
    "printer",
    "toaster",
    "microwave",
    "scooter",
    "bookshelf",
    "monitor",
    "vacuum cleaner",
    "headset",
)
TEMPLATES = (
    "The {item} costs {price}.",
    "I paid {price} for a {item} yesterday.",
    "Big sale: the {item} is now only {price}!",
    "Our {item} is priced at {price} per unit.",
    "She sold her old {item} for {price}.",
    "A new {item} will set you back {price}.",
    "The invoice lists one {item} at {price}.",
    "He offered {price} for the {item}.",
    "Get the {item} for just {price} this week.",
    "Renting the {item} cost us {price} in total.",
    "The shop down the road wants {price} for that {item}.",
    "Price check: {item}, {price}.",
)
K, MIN_SIMILARITY, MAX_TOKENS = 3, 0.3, 800  # the few-shot settings measured
MAX_ANSWER_TOKENS = 40


@dataclass(frozen=True)
class Item:
    """One task item: the sentence's prompt and its exact answer."""

    prompt: str
    price: float
    currency: str
    product: str = ""  # what the sentence prices (benchmarks/teach.py extracts it too)
    sentence: str = ""  # the sentence inside `prompt`

    @property
    def answer(self) -> str:
        price: float | int = int(self.price) if self.price == int(self.price) else self.price
        return json.dumps({"price": price, "currency": self.currency})


def make_items(count: int, seed: int) -> list[Item]:
    """`count` distinct items, deterministic for `seed`."""
    rng = random.Random(seed)
    items: dict[str, Item] = {}
    while len(items) < count:
        currency = rng.choice(sorted(CURRENCIES))
        cents = currency != "JPY" and rng.random() < 0.5
        price = round(rng.uniform(1, 2500), 2) if cents else float(rng.randint(1, 2500))
        number = f"{price:,.2f}" if cents else f"{int(price):,}"
        symbol, words = CURRENCIES[currency]
        written = f"{symbol}{number}" if symbol and rng.random() < 0.4 else f"{number} {rng.choice(words)}"
        template, product = rng.choice(TEMPLATES), rng.choice(ITEMS)  # in this order: same items as before
        sentence = template.format(item=product, price=written)
        sentence = sentence[0].upper() + sentence[1:]
        items.setdefault(sentence, Item(PROMPT.format(sentence=sentence), price, currency, product, sentence))
    return list(items.values())


def grade(reply: str, item: Item) -> bool:
    """True when the reply's first JSON object has exactly the item's price and currency."""
    match = re.search(r"\{.*?\}", reply, re.DOTALL)
    if not match:
        return False
    try:
        payload = json.loads(match.group(0))
        price = float(str(payload["price"]).replace(",", ""))
        currency = str(payload["currency"]).strip().upper()
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return abs(price - item.price) < 1e-6 and currency == item.currency


def chat(api_base: str, messages: tuple[Message, ...]) -> tuple[str, int, int, float]:
    """(reply, prompt tokens, completion tokens, latency ms) of one greedy call."""
    body = json.dumps(
        {
            "model": "smollm2-135m",
            "temperature": 0,
            "max_tokens": MAX_ANSWER_TOKENS,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{api_base}/chat/completions", body, headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.perf_counter()
    with opener.open(request, timeout=120) as response:
        payload = json.load(response)
    latency_ms = (time.perf_counter() - started) * 1000
    usage = payload.get("usage") or {}
    return (
        payload["choices"][0]["message"]["content"] or "",
        int(usage.get("prompt_tokens", 0)),
        int(usage.get("completion_tokens", 0)),
        latency_ms,
    )


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [run["latency_ms"] for run in runs]
    return {
        "accuracy": sum(run["correct"] for run in runs) / len(runs),
        "correct": sum(run["correct"] for run in runs),
        "items": len(runs),
        "latency_ms_mean": statistics.fmean(latencies),
        "latency_ms_p50": statistics.median(latencies),
        "prompt_tokens_mean": statistics.fmean(run["prompt_tokens"] for run in runs),
        "completion_tokens_mean": statistics.fmean(run["completion_tokens"] for run in runs),
    }


def search_timing(sizes: list[int], dim: int, queries: int = 50) -> list[dict[str, float]]:
    """Brute-force top-k latency (ms per query) over `sizes` random unit exemplars in one scope."""
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        matrix = rng.standard_normal((size, dim), dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        exemplars = [Exemplar(id=str(i), prompt=str(i), answer="a", source="curated") for i in range(size)]
        store = ExemplarStore.from_embedded(exemplars, matrix)
        probes = matrix[rng.integers(0, size, queries)]
        timings = []
        for probe in probes:
            started = time.perf_counter()
            store.search(Query(probe, None, K, MIN_SIMILARITY, MAX_TOKENS))
            timings.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "exemplars": size,
                "ms_p50": statistics.median(timings),
                "ms_max": max(timings),
                "matrix_mb": matrix.nbytes / 2**20,
            }
        )
        del matrix, store
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a CI-sized run (a handful of items)")
    parser.add_argument("--test-items", type=int, help="held-out items (default 30; 4 with --smoke)")
    parser.add_argument("--pool-items", type=int, default=300, help="exemplar pool size (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    test_count = args.test_items or (4 if args.smoke else 30)

    from classifier.scoring import Scorer
    from router.backends.llama_child import EmbeddedProcess, EmbeddedSpec
    from router.config import DEFAULT_MODELS_DIR
    from router.config.embedded import missing_requirement

    missing = missing_requirement("smollm2-135m")
    if missing is not None:
        print(f"skipped: {missing}", file=sys.stderr)
        return 0
    items = make_items(args.pool_items + test_count, args.seed)
    pool, test = items[: args.pool_items], items[args.pool_items :]
    assert not {i.prompt for i in pool} & {i.prompt for i in test}, "the splits overlap"

    embedder = Scorer.from_path(DEFAULT_MODELS_DIR / "default", threads=1).embedder
    started = time.perf_counter()
    pool_vectors = embedder.embed([item.prompt for item in pool])
    embed_ms = (time.perf_counter() - started) * 1000 / len(pool)
    store = ExemplarStore.from_embedded(
        [
            Exemplar(id=f"ex-{i}", prompt=item.prompt, answer=item.answer, source="curated")
            for i, item in enumerate(pool)
        ],
        pool_vectors,
    )
    test_vectors = embedder.embed([item.prompt for item in test])

    process = EmbeddedProcess(EmbeddedSpec.from_embedded("smollm2-135m"), name="bench")
    process.start()
    try:
        if not process.wait_ready(120):
            print(f"llama.cpp did not start: {process.state.detail}", file=sys.stderr)
            return 1
        runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
        estimate_gaps = []
        for item, vector in zip(test, test_vectors, strict=True):
            base = (Message("system", SYSTEM), Message("user", item.prompt))
            selection = store.search(
                Query(vector, None, K, MIN_SIMILARITY, MAX_TOKENS, exclude_prompts=frozenset({item.prompt}))
            )
            for mode, shots in (("without", Selection()), ("with", selection)):
                reply, prompt_tokens, completion_tokens, latency_ms = chat(
                    process.spec.api_base, inject(base, shots)
                )
                runs[mode].append(
                    {
                        "correct": grade(reply, item),
                        "latency_ms": latency_ms,
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "exemplars": len(shots.matches),
                        "reply": reply,
                    }
                )
            added = runs["with"][-1]["prompt_tokens"] - runs["without"][-1]["prompt_tokens"]
            if selection:
                estimate_gaps.append(selection.tokens / max(added, 1))
    finally:
        process.stop()

    sizes = [1_000, 10_000] if args.smoke else [1_000, 10_000, 50_000, 100_000]
    results = {
        "task": "price+currency extraction to JSON (exact match)",
        "model": "SmolLM2-135M-Instruct Q4_1 (llama.cpp, 1 thread, temperature 0)",
        "pool_items": len(pool),
        "test_items": len(test),
        "seed": args.seed,
        "few_shot": {"k": K, "min_similarity": MIN_SIMILARITY, "max_tokens": MAX_TOKENS},
        "without": summarise(runs["without"]),
        "with": summarise(runs["with"]),
        "exemplars_per_request_mean": statistics.fmean(r["exemplars"] for r in runs["with"]),
        "token_estimate_over_actual_mean": statistics.fmean(estimate_gaps) if estimate_gaps else None,
        "embed_ms_per_exemplar": embed_ms,
        "search": search_timing(sizes, int(pool_vectors.shape[1])),
        "load_average_1m": os.getloadavg()[0],  # the machine is shared: timings move with its load
        "examples": [
            {"prompt": item.prompt, "gold": item.answer, "without": w["reply"], "with": f["reply"]}
            for item, w, f in list(zip(test, runs["without"], runs["with"], strict=True))[:3]
        ],
    }
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{results['task']}; {results['model']}; {results['test_items']} held-out items, "
        f"exemplars from a separate pool of {results['pool_items']}"
    )
    print(f"{'':<10}{'accuracy':>10}{'p50 ms':>10}{'mean ms':>10}{'prompt tok':>12}{'answer tok':>12}")
    for mode in ("without", "with"):
        row = results[mode]
        print(
            f"{mode:<10}{row['accuracy']:>10.1%}{row['latency_ms_p50']:>10.0f}"
            f"{row['latency_ms_mean']:>10.0f}{row['prompt_tokens_mean']:>12.1f}"
            f"{row['completion_tokens_mean']:>12.1f}"
        )
    gap = results["token_estimate_over_actual_mean"]
    print(
        f"exemplars per request {results['exemplars_per_request_mean']:.2f}; token estimate / actual "
        f"{'-' if gap is None else f'{gap:.2f}'}; embedding {results['embed_ms_per_exemplar']:.1f} "
        f"ms/exemplar; load average {results['load_average_1m']:.1f}"
    )
    for row in results["search"]:
        print(
            f"search over {row['exemplars']:>7} exemplars: p50 {row['ms_p50']:.2f} ms, "
            f"max {row['ms_max']:.2f} ms ({row['matrix_mb']:.0f} MB)"
        )


if __name__ == "__main__":
    sys.exit(main())
