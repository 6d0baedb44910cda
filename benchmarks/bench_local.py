"""The embedded small tier: SmolLM2-135M's speed, the router's share of a small-tier call, cost vs gpt-4o.

Run `python benchmarks/bench_local.py` (or `--smoke` for the tiny CI run); needs the [local] extra.
1. The llama.cpp child alone (as the router runs it): time to first token and decode tokens/s, streamed
   over HTTP straight to the child.
2. A real `rightsize serve` with the shipped tiers (embedded SmolLM2, keyless gpt-4o, threshold 0.5):
   Route over gRPC against a whole small-tier Complete, and Complete against LiteLLM calling the same
   child directly. Every prompt is answered by SmolLM2 (the large tier has no key); the decision says
   which would have gone to gpt-4o.
3. Cost: what gpt-4o would have charged for all prompts, and for the routed ones, at LiteLLM's local
   price map, counting tokens with gpt-4o's tokenizer on the same prompts and answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402
from router.backends.litellm import import_litellm  # noqa: E402
from router.backends.llama_child import EmbeddedProcess, EmbeddedSpec  # noqa: E402
from router.config import DEFAULT_CONFIG_PATH  # noqa: E402
from router.config.embedded import missing_requirement  # noqa: E402

PROMPTS = [
    "Turn this sentence into JSON: 'John is 35'",
    "What is the capital of France?",
    "Write a haiku about autumn rain.",
    "Translate 'good morning' into Spanish.",
    "List three primary colours.",
    "Summarise the plot of Hamlet in two sentences.",
    "Explain the difference between TCP and UDP to a new engineer.",
    "Design a globally distributed key-value store with strong consistency: replication, leader election, "
    "failure detection, partitions and clock skew.",
    "Prove that the square root of two is irrational.",
    "Write a Python function that merges overlapping intervals and explain its complexity.",
    "Compare the economic policies of Keynes and Hayek and their relevance to the 2008 crisis.",
    "Give me a word that rhymes with cat.",
]
LARGE_MODEL = "openai/gpt-4o"


def median_ms(samples_s: list[float]) -> float:
    return statistics.median(samples_s) * 1000


def stream_direct(api_base: str, prompt: str, max_tokens: int) -> dict[str, float]:
    """One greedy streamed chat completion straight to the child: TTFT, tokens and decode rate."""
    body = json.dumps(
        {
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{api_base}/chat/completions", body, headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.perf_counter()
    token_times = []
    with opener.open(request, timeout=120) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                token_times.append(time.perf_counter())  # llama.cpp streams one token per event
    ttft = token_times[0] - started
    decode_s = token_times[-1] - token_times[0]
    return {
        "ttft_s": ttft,
        "tokens": len(token_times),
        "decode_tok_s": (len(token_times) - 1) / decode_s if decode_s > 0 else 0.0,
    }


def bench_child(prompts: list[str], max_tokens: int) -> dict[str, Any]:
    spec = EmbeddedSpec.from_embedded("smollm2-135m")
    process = EmbeddedProcess(spec, name="bench")
    started = time.perf_counter()
    process.start()
    try:
        if not process.wait_ready(spec.ready_timeout_s):
            raise SystemExit(f"the llama.cpp child did not start: {process.state.detail}")
        ready_s = time.perf_counter() - started
        stream_direct(spec.api_base, "Hello", 4)  # warm-up
        runs = [stream_direct(spec.api_base, prompt, max_tokens) for prompt in prompts]
    finally:
        process.stop()
    return {
        "model start (spawn to /v1/models), s": round(ready_s, 2),
        "threads": spec.threads,
        "time to first token p50, ms": round(median_ms([run["ttft_s"] for run in runs]), 1),
        "decode tokens/s p50": round(statistics.median(run["decode_tok_s"] for run in runs), 1),
        "tokens per answer p50": statistics.median(run["tokens"] for run in runs),
    }


def start_server(workdir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """`rightsize serve` on the shipped config and free ports: the process, its address, the api_base."""
    config = workdir / "router.yaml"
    config.write_text(DEFAULT_CONFIG_PATH.read_text())
    env = {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router",
            "serve",
            "--config",
            str(config),
            "--address",
            "127.0.0.1:0",
            "--metrics-port",
            "0",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"},
    )
    address = api_base = None
    assert process.stderr is not None
    for line in process.stderr:
        if match := re.search(r"serving rightsize\.v1\.Router on (\S+:\d+)", line):
            address = match.group(1)
        if match := re.search(r"tier small: live: \S+ answers on (\S+)", line):
            api_base = match.group(1)
        if address and api_base:
            return process, address, api_base
    raise SystemExit(f"the server did not start (exit {process.wait()})")


async def wait_serving(channel: grpc.aio.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from router.rpc.server import COMPLETION_HEALTH_SERVICE

    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(1200):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=COMPLETION_HEALTH_SERVICE))
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return
        await asyncio.sleep(0.05)
    raise SystemExit("Complete never became SERVING")


async def bench_router(prompts: list[str], max_tokens: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    litellm = import_litellm()  # as the server does (offline price map, no ./.env)

    with tempfile.TemporaryDirectory() as workdir:
        server, address, api_base = start_server(Path(workdir))
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                await wait_serving(channel)
                stub = pb_grpc.RouterStub(channel)
                params = pb.GenerationParams(max_tokens=max_tokens, temperature=0)
                route_s, complete_s, direct_s, answers = [], [], [], []
                for prompt in prompts:
                    messages = [pb.Message(role="user", content=prompt)]
                    started = time.perf_counter()
                    await stub.Route(pb.RouteRequest(messages=messages))
                    route_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    response = await stub.Complete(pb.CompleteRequest(messages=messages, params=params))
                    complete_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    await litellm.acompletion(
                        model="hosted_vllm/smollm2-135m",
                        api_base=api_base,
                        messages=[{"role": "user", "content": prompt}],
                        max_tokens=max_tokens,
                        temperature=0,
                    )
                    direct_s.append(time.perf_counter() - started)
                    answers.append(
                        {
                            "prompt": prompt,
                            "text": response.text,
                            "tier": response.decision.tier,
                            "score": round(response.decision.score, 3),
                        }
                    )
        finally:
            server.terminate()
            server.wait(30)
    complete_ms, route_ms = median_ms(complete_s), median_ms(route_s)
    overhead_ms = statistics.median(c - d for c, d in zip(complete_s, direct_s, strict=True)) * 1000
    return {
        "Route over gRPC p50, ms": round(route_ms, 2),
        "small-tier Complete p50, ms": round(complete_ms, 1),
        "routing share of a small-tier call (Route / Complete), %": round(100 * route_ms / complete_ms, 2),
        "Complete minus direct LiteLLM call p50, ms": round(overhead_ms, 1),
    }, answers


def cost(answers: list[dict[str, Any]]) -> dict[str, Any]:
    litellm = import_litellm()  # as the server does (offline price map, no ./.env)

    def gpt4o_usd(answer: dict[str, Any]) -> float:
        prompt_tokens = litellm.token_counter(
            model="gpt-4o", messages=[{"role": "user", "content": answer["prompt"]}]
        )
        completion_tokens = litellm.token_counter(model="gpt-4o", text=answer["text"])
        prompt_usd, completion_usd = litellm.cost_per_token(
            model=LARGE_MODEL, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt_usd + completion_usd)

    all_large = sum(gpt4o_usd(answer) for answer in answers)
    routed = sum(gpt4o_usd(answer) for answer in answers if answer["tier"] == "large")
    per_1000 = 1000 / len(answers)
    return {
        "prompts": len(answers),
        "routed to large (threshold 0.5)": sum(answer["tier"] == "large" for answer in answers),
        "all-large at gpt-4o prices, USD per 1000 such prompts": round(all_large * per_1000, 4),
        "routed (large share at gpt-4o, small free), USD per 1000": round(routed * per_1000, 4),
        "this run (all answered by SmolLM2), USD": 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the benchmark still runs")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    missing = missing_requirement("smollm2-135m")
    if missing is not None:
        raise SystemExit(missing)
    prompts, max_tokens = (PROMPTS[:3], 16) if args.smoke else (PROMPTS, args.max_tokens)
    results: dict[str, Any] = {"SmolLM2-135M (llama.cpp child)": bench_child(prompts, max_tokens)}
    router_figures, answers = asyncio.run(bench_router(prompts, max_tokens))
    results["router"] = router_figures
    results["cost"] = cost(answers)
    for section, figures in results.items():
        print(f"{section}:")
        for name, value in figures.items():
            print(f"  {name:60} {value}")
    if args.json:
        args.json.write_text(json.dumps({**results, "answers": answers}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
