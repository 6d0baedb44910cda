"""Service overhead: Route over loopback vs the in-process classifier; Complete vs direct litellm.acompletion.

Run `python benchmarks/bench_service.py` (or `--smoke` for the tiny CI run). The server runs as a real
`rightsize serve` subprocess; the backend is the Ollama stand-in from tests/router/standins.py.
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
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402
from tests.router.standins import StandIn  # noqa: E402

PROMPTS = [
    "Turn this sentence into JSON: 'John is 35'",
    "What is the capital of France?",
    "Design a globally distributed key-value store with strong consistency.",
    "Summarise the plot of Hamlet in two sentences.",
    "Write a haiku about autumn rain.",
    "Explain the difference between TCP and UDP to a new engineer.",
    "Prove that the square root of two is irrational.",
    "Translate 'good morning' into Spanish, French and German.",
]


def user_message(i: int) -> pb.Message:
    return pb.Message(role="user", content=PROMPTS[i % len(PROMPTS)])


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    ordered = sorted(samples_s)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": pick(0.5), "p99_ms": pick(0.99), "mean_ms": statistics.fmean(ordered) * 1000}


async def timed(n: int, call: Callable[[int], Awaitable[object]], concurrency: int = 1) -> list[float]:
    samples: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def start_server(
    standin: StandIn,
    workdir: Path,
    model_dir: Path,
    scoring: dict[str, object] | None = None,
    speculative: bool = False,
    seen: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """A `rightsize serve` subprocess on `model_dir`; `seen` gets the embedder file and threads it chose
    (scoring: auto) and its metrics port."""
    config = {
        "server": {"address": "127.0.0.1:0", "metrics_port": 0},
        "tiers": {
            "small": {"model": "ollama_chat/llama3:8b", "api_base": standin.url},
            "large": {"model": "ollama_chat/llama3:70b", "api_base": standin.url},
        },
        # Everything to small: both paths hit the same stand-in.
        "routing": {"threshold": 1.0, "speculative_small": speculative},
        "models": {"dir": str(model_dir.parent), "active": model_dir.name},
        "scoring": scoring or {},
    }
    path = workdir / "bench.yaml"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(path)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        if (choice := re.search(r"embedder (\S+) with (\d+) thread", line)) and seen is not None:
            seen.update(file=choice.group(1), threads=choice.group(2))
        if match := re.search(r"serving rightsize\.v1\.Router on (\S+:\d+)", line):
            if (metrics := re.search(r"metrics on http://\S+:(\d+)/", line)) and seen is not None:
                seen["metrics_port"] = metrics.group(1)
            threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
            return process, match.group(1)
    raise SystemExit(f"the server did not start (exit {process.wait()})")


async def wait_completion_ready(channel: grpc.aio.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from router.rpc.server import COMPLETION_HEALTH_SERVICE

    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(600):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=COMPLETION_HEALTH_SERVICE))
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return
        await asyncio.sleep(0.05)
    raise SystemExit("LiteLLM never became ready in the server")


Results = dict[str, dict[str, float]]


async def bench_classifier(model_dir: Path, n: int, warmup: int, scoring: dict[str, object]) -> Results:
    """The classifier alone, in this process, with the server's thread count and embedder: called
    directly, through a plain one-thread executor, and through the server's micro-batching ScoringQueue
    one request at a time (what batching costs a lone request = queue minus executor)."""
    from concurrent.futures import ThreadPoolExecutor

    from classifier.embedding import VARIANT_FILES
    from classifier.scoring import Scorer
    from router.scoring_queue import ScoringQueue

    threads: int | str | None = scoring.get("threads")  # type: ignore[assignment]
    threads = None if threads is None else threads if threads == "auto" else int(str(threads))
    choice = scoring.get("embedder")
    embedder_file = VARIANT_FILES[choice] if choice in ("fp32", "int8") else None  # type: ignore[index]
    if choice in VARIANT_FILES.values():  # the file the server measured and chose (scoring: auto)
        embedder_file = str(choice)
    scorer = Scorer.from_path(model_dir, threads=threads, embedder_file=embedder_file)
    for i in range(warmup):
        scorer.score([PROMPTS[i % len(PROMPTS)]])
    samples, embedding = [], []
    for i in range(n):
        started = time.perf_counter()
        scorer.score([PROMPTS[i % len(PROMPTS)]])
        samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        scorer.embedder.embed([PROMPTS[i % len(PROMPTS)]])
        embedding.append(time.perf_counter() - started)
    results = {"classifier in-process": percentiles(samples), "embedding in-process": percentiles(embedding)}
    reference = sentence_transformer()
    if reference is not None:
        torch_samples = []
        for i in range(warmup + n):
            started = time.perf_counter()
            reference.encode([PROMPTS[i % len(PROMPTS)]], normalize_embeddings=True)
            torch_samples.append(time.perf_counter() - started)
        results["sentence-transformers encode"] = percentiles(torch_samples[warmup:])

    async def through_executor_and_queue() -> None:
        executor = ThreadPoolExecutor(max_workers=1)
        queue = ScoringQueue(scorer)
        loop = asyncio.get_running_loop()

        def plain(i: int) -> Awaitable[object]:
            return loop.run_in_executor(executor, scorer.score, [PROMPTS[i % len(PROMPTS)]])

        def queued(i: int) -> Awaitable[object]:
            return queue.score_with_embedding(PROMPTS[i % len(PROMPTS)])

        rounds: dict[str, list[float]] = {"classifier, executor hop": [], "classifier, ScoringQueue": []}
        await timed(warmup, plain)
        await timed(warmup, queued)
        for _ in range(4):  # interleaved, so that both see the same machine
            rounds["classifier, executor hop"] += await timed(max(1, n // 4), plain)
            rounds["classifier, ScoringQueue"] += await timed(max(1, n // 4), queued)
        results.update({name: percentiles(values) for name, values in rounds.items()})
        queue.close()
        executor.shutdown()

    await through_executor_and_queue()
    ceiling_scorer.append(scorer)
    return results


ceiling_scorer: list[object] = []  # the in-process scorer, kept for the batch ceiling after the server run


def batch_ceiling(batch: int, seconds: float = 2.0) -> float:
    """Prompts/s the in-process scorer sustains on batches of `batch` of the same prompts."""
    scorer = ceiling_scorer[-1]
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    scorer.score(texts)  # type: ignore[attr-defined]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        scorer.score(texts)  # type: ignore[attr-defined]
        done += batch
    return done / (time.perf_counter() - started)


def sentence_transformer():  # type: ignore[no-untyped-def]
    try:
        from classifier.export import load_sentence_transformer

        return load_sentence_transformer()
    except Exception:  # the [export] extra is optional
        return None


def batch_sizes(metrics_port: str | None) -> tuple[float, float]:
    """(sum, count) of the server's rightsize_classifier_batch_size histogram."""
    if metrics_port is None:
        return 0.0, 0.0
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    values = dict(
        line.rsplit(" ", 1)
        for line in text.splitlines()
        if line.startswith("rightsize_classifier_batch_size_")
    )
    return float(values.get("rightsize_classifier_batch_size_sum", 0)), float(
        values.get("rightsize_classifier_batch_size_count", 0)
    )


async def bench_server(
    address: str, n: int, warmup: int, concurrency: int, metrics_port: str | None = None
) -> Results:
    """Route (one client, then `concurrency` clients) and Complete through a running server, and the
    standard health check's round trip (gRPC's own cost)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    results: Results = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.RouterStub(channel)
        await wait_completion_ready(channel)
        health = health_pb2_grpc.HealthStub(channel)

        def check(_i: int) -> Awaitable[object]:
            return health.Check(health_pb2.HealthCheckRequest())

        await timed(warmup, check)
        results["gRPC health round trip"] = percentiles(await timed(n, check))

        def route(i: int) -> Awaitable[object]:
            return stub.Route(pb.RouteRequest(messages=[user_message(i)]))

        def complete(i: int) -> Awaitable[object]:
            return stub.Complete(pb.CompleteRequest(messages=[user_message(i)]))

        await timed(warmup, route)
        results["Route over loopback"] = percentiles(await timed(n, route))
        if concurrency > 1:
            before = batch_sizes(metrics_port)
            started = time.perf_counter()
            samples = await timed(n * 4, route, concurrency)
            row = percentiles(samples)
            row["per_s"] = len(samples) / (time.perf_counter() - started)
            after = batch_sizes(metrics_port)
            if after[1] > before[1]:
                row["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
            results[f"Route x{concurrency} concurrent"] = row
        await timed(warmup, complete)
        results["Complete via router"] = percentiles(await timed(n, complete))
    return results


async def bench_direct_litellm(standin: StandIn, n: int, warmup: int) -> Results:
    """litellm.acompletion in this process against the same stand-in the server uses."""
    from router.backends.litellm import import_litellm

    litellm = import_litellm()  # as the server does

    def direct(i: int) -> Awaitable[object]:
        messages = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
        return litellm.acompletion(model="ollama_chat/llama3:8b", api_base=standin.url, messages=messages)

    await timed(warmup, direct)
    results = {"litellm.acompletion direct": percentiles(await timed(n, direct))}
    # As the router calls it: the Ollama model entered in LiteLLM's map, so no /api/show lookups per
    # call (router.backends.litellm.LiteLLMBackend._prepare); the overhead against this row is the router's
    # own work.
    litellm.register_model({"ollama_chat/llama3:8b": {"litellm_provider": "ollama_chat", "mode": "chat"}})
    await timed(warmup, direct)
    results["litellm direct, model mapped"] = percentiles(await timed(n, direct))
    return results


async def run(
    model_dir: Path, n: int, warmup: int, concurrency: int, scoring: dict[str, object] | None = None
) -> Results:
    """Every figure, one at a time so that they do not compete for the CPU."""
    scoring = scoring or {}
    results: Results = {}
    seen: dict[str, str] = {}
    standin = StandIn("ollama", reply="ok")
    # The stand-in plays an Ollama on this host, which is where LiteLLM sends its model lookups
    # (POST /api/show, to $OLLAMA_API_BASE or localhost:11434), for the server and the direct calls alike.
    os.environ["OLLAMA_API_BASE"] = standin.url
    try:
        with tempfile.TemporaryDirectory() as workdir:
            process, address = start_server(standin, Path(workdir), model_dir, scoring, seen=seen)
            try:
                results.update(await bench_server(address, n, warmup, concurrency, seen.get("metrics_port")))
            finally:
                process.terminate()
                process.wait(30)
        # In-process, with the file and threads the server chose, once the server is gone (no contention).
        served = {"embedder": seen.get("file", scoring.get("embedder")), "threads": seen.get("threads")}
        results.update(await bench_classifier(model_dir, n, warmup, {**scoring, **served}))
        row = results.get(f"Route x{concurrency} concurrent", {})
        if "mean_batch" in row:
            batch = max(1, round(row["mean_batch"]))
            results["in-process batch ceiling"] = {"per_s": batch_ceiling(batch), "batch": batch}
        results.update(await bench_direct_litellm(standin, n, warmup))
    finally:
        standin.kill()
    return results


async def bench_speculative(model_dir: Path, n: int, warmup: int) -> Results:
    """Complete p50, short and ~2,400-token prompts, speculation off then on; the stand-in takes 100 ms."""
    from benchmarks.bench_classifier import LONG

    results: Results = {}
    for speculative in (False, True):
        standin = StandIn("ollama", reply="ok")
        standin.delay_s = 0.1
        try:
            with tempfile.TemporaryDirectory() as workdir:
                process, address = start_server(standin, Path(workdir), model_dir, {}, speculative)
                try:
                    async with grpc.aio.insecure_channel(address) as channel:
                        stub = pb_grpc.RouterStub(channel)
                        await wait_completion_ready(channel)
                        for label, text in (("short prompt", PROMPTS[0]), ("2,420-token prompt", LONG)):
                            request = pb.CompleteRequest(messages=[pb.Message(role="user", content=text)])
                            await timed(warmup, lambda _i, r=request, s=stub: s.Complete(r))
                            samples = await timed(n, lambda _i, r=request, s=stub: s.Complete(r))
                            name = f"Complete, {label}, speculative_small {'on' if speculative else 'off'}"
                            results[name] = percentiles(samples)
                finally:
                    process.terminate()
                    process.wait(30)
        finally:
            standin.kill()
    return results


def report(results: Results) -> str:
    lines = [f"{'figure':32} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'per s':>8}"]
    for name, row in results.items():
        per_s = f"{row['per_s']:8.0f}" if "per_s" in row else f"{'':>8}"
        if "p50_ms" not in row:
            lines.append(f"{name:32} {'':>8} {'':>8} {'':>8} {per_s}  (batches of {row.get('batch', 0):.0f})")
            continue
        lines.append(f"{name:32} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['mean_ms']:8.2f} {per_s}")
    lines.extend(ratios(results))
    batching = results["classifier, ScoringQueue"]["p50_ms"] - results["classifier, executor hop"]["p50_ms"]
    lines.append(f"Micro-batching's cost to a lone request: {batching:+.2f} ms p50 (target <= 0.5 ms)")
    route = results["Route over loopback"]["p50_ms"] - results["classifier in-process"]["p50_ms"]
    complete = results["Complete via router"]["p50_ms"] - results["litellm.acompletion direct"]["p50_ms"]
    mapped = results["Complete via router"]["p50_ms"] - results["litellm direct, model mapped"]["p50_ms"]
    lines.append(f"Route overhead over the in-process classifier: {route:+.2f} ms p50")
    lines.append(
        f"Complete overhead over litellm.acompletion: {complete:+.2f} ms p50 (target <= 2 ms); "
        f"over the same call with the model mapped: {mapped:+.2f} ms"
    )
    return "\n".join(lines)


def ratios(results: Results) -> list[str]:
    """Issue 20's targets, each from figures of this one run."""
    p50 = {name: row["p50_ms"] for name, row in results.items() if "p50_ms" in row}
    lines = []
    route, health = p50.get("Route over loopback"), p50.get("gRPC health round trip")
    if route is not None and health is not None and "embedding in-process" in p50:
        overhead = route - p50["embedding in-process"]
        met = "met" if overhead <= health + 0.5 else "NOT met"
        lines.append(
            f"Decision overhead: Route p50 - in-process embedding p50 = {overhead:.2f} ms; target <= health "
            f"round trip + 0.5 = {health + 0.5:.2f} ms: {met}"
        )
    concurrent = next((row for name, row in results.items() if name.startswith("Route x")), None)
    ceiling = results.get("in-process batch ceiling")
    if concurrent is not None and ceiling is not None:
        share = concurrent["per_s"] / ceiling["per_s"]
        lines.append(
            f"Throughput: {concurrent['per_s']:.0f}/s / in-process ceiling {ceiling['per_s']:.0f}/s "
            "(batches of "
            f"{ceiling['batch']:.0f}, the server's mean) = {share:.2f}x; target >= 0.85x: "
            f"{'met' if share >= 0.85 else 'NOT met'}"
        )
    if route is not None and "sentence-transformers encode" in p50:
        speedup = p50["sentence-transformers encode"] / route
        lines.append(
            f"Against torch: sentence-transformers encode p50 / whole Route RPC p50 = {speedup:.2f}x; "
            f"target >= 3x: {'met' if speedup >= 3 else 'NOT met'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the benchmark still runs")
    parser.add_argument("-n", type=int, default=300, help="timed calls per figure")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default", help="model directory")
    parser.add_argument("--threads", type=int, help="scoring.threads for the server")
    parser.add_argument(
        "--embedder",
        choices=["auto", "trained", "fp32", "int8", "int8_full"],
        help="scoring.embedder for the server (default: auto, measured at its start)",
    )
    parser.add_argument(
        "--speculative",
        action="store_true",
        help="instead: Complete with routing.speculative_small off and on, against a small "
        "model that takes 100 ms",
    )
    args = parser.parse_args(argv)
    n, warmup, concurrency = (5, 2, 2) if args.smoke else (args.n, 20, args.concurrency)
    if args.speculative:
        results = asyncio.run(bench_speculative(args.model.resolve(), max(3, n // 10), warmup=3))
        for name, row in results.items():
            print(f"{name:60} p50 {row['p50_ms']:8.1f} ms")
    else:
        scoring = {k: v for k, v in (("threads", args.threads), ("embedder", args.embedder)) if v is not None}
        results = asyncio.run(run(args.model.resolve(), n, warmup, concurrency, scoring))
        print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
