"""The embedded child's completion time with and without token log-probabilities, stock against ours.

    python benchmarks/bench_logprobs.py [--smoke] [--max-tokens N] [--json FILE]

Two children serve the same SmolLM2-135M one after the other, as the router starts them (one thread,
n_ctx 2048): stock `python -m llama_cpp.server` (logits_all on, its own logprobs path) and the router's
router/backends/llama_server.py (logits_all off, logprobs from the sampled rows). Each answers every prompt
of benchmarks/bench_local.py greedily over HTTP, non-streaming, once without and once with `logprobs`
(`top_logprobs` 2, what the cascade's confidence verifier asks). Figures: p50 per call, and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_local import PROMPTS  # noqa: E402
from router.backends.llama_child import SERVER_SCRIPT, EmbeddedProcess, EmbeddedSpec  # noqa: E402
from router.config.embedded import missing_requirement  # noqa: E402

SERVERS = {"stock llama_cpp.server": "llama_cpp.server", "router llama_server.py": str(SERVER_SCRIPT)}


def complete(api_base: str, prompt: str, max_tokens: int, logprobs: bool) -> tuple[float, int]:
    """(seconds, logprob entries) for one greedy non-streamed chat completion straight to the child."""
    body: dict[str, Any] = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if logprobs:
        body |= {"logprobs": True, "top_logprobs": 2}
    request = urllib.request.Request(
        f"{api_base}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.perf_counter()
    with opener.open(request, timeout=300) as response:
        reply = json.loads(response.read())
    elapsed = time.perf_counter() - started
    entries = (reply["choices"][0].get("logprobs") or {}).get("content") or []
    return elapsed, len(entries)


def bench(module: str, prompts: list[str], max_tokens: int) -> dict[str, float]:
    spec = replace(EmbeddedSpec.from_embedded("smollm2-135m"), server_module=module)
    process = EmbeddedProcess(spec, name="bench")
    process.start()
    try:
        if not process.wait_ready(spec.ready_timeout_s):
            raise SystemExit(f"{module} did not start: {process.state.detail}")
        complete(spec.api_base, "Hello", 4, logprobs=True)  # warm-up
        plain = [complete(spec.api_base, p, max_tokens, logprobs=False)[0] for p in prompts]
        scored = [complete(spec.api_base, p, max_tokens, logprobs=True) for p in prompts]
    finally:
        process.stop()
    if not all(entries for _, entries in scored):
        raise SystemExit(f"{module} returned no log-probabilities for some prompt")
    return {
        "without logprobs p50, ms": round(statistics.median(plain) * 1000, 1),
        "with logprobs p50, ms": round(statistics.median(s for s, _ in scored) * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="two prompts, 8 tokens")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    missing = missing_requirement("smollm2-135m")
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    prompts, max_tokens = (PROMPTS[:2], 8) if args.smoke else (PROMPTS, args.max_tokens)
    results = {name: bench(module, prompts, max_tokens) for name, module in SERVERS.items()}
    stock, ours = results.values()
    key_plain, key_lp = "without logprobs p50, ms", "with logprobs p50, ms"
    results["ratios"] = {
        "stock / router, without logprobs": round(stock[key_plain] / ours[key_plain], 2),
        "stock / router, with logprobs": round(stock[key_lp] / ours[key_lp], 2),
        "router: with / without logprobs": round(ours[key_lp] / ours[key_plain], 2),
    }
    for name, figures in results.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    if args.json:
        args.json.write_text(
            json.dumps({"prompts": len(prompts), "max_tokens": max_tokens, **results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
