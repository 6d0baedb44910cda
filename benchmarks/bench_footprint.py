"""Cold start (exec -> SERVING on the standard health service) and resident memory over 10,000 calls.

Two servers, each after 10,000 calls from 32 streams: Route only, then half Route and half Complete against a
stand-in Ollama (the Complete path loads the rest of LiteLLM).

python benchmarks/bench_footprint.py [--smoke] [--requests 10000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from benchmarks.bench_service import wait_completion_ready  # noqa: E402
from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402
from tests.router.standins import StandIn  # noqa: E402

PROMPTS = [
    "Turn this sentence into JSON: 'John is 35'",
    "Design a globally distributed key-value store with strong consistency and explain the trade-offs.",
    "Classify the sentiment: the delivery was late and the box was crushed.",
    "Write a Python function that returns the n-th prime, with tests.",
]


# A channel whose first connect is refused (the port is not open yet) waits out gRPC's reconnect backoff,
# 1 s by default, then 1.6 s: with the defaults this benchmark measured the client's backoff (1.1-2.9 s),
# not the server. Polling every few milliseconds measures when the server is SERVING.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 5),
    ("grpc.min_reconnect_backoff_ms", 5),
    ("grpc.max_reconnect_backoff_ms", 20),
]


def varied_prompts(limit: int = 2000) -> list[str]:
    """Real prompts of many sources (their vocabulary touches much of the embedding table), cut to 400
    characters; the four PROMPTS when ../shared is not there."""
    path = ROOT.parent / "shared" / "data" / "routing" / "train.jsonl"
    if not path.is_file():
        return PROMPTS
    with path.open() as handle:
        rows = [json.loads(line)["prompt"][:400] for line in handle]
    return rows[:: max(1, len(rows) // limit)][:limit]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start(workdir: Path, small_url: str = "http://127.0.0.1:9") -> tuple[subprocess.Popen[bytes], str, float]:
    """Start `rightsize serve`; return the process, its address, and seconds from exec to SERVING."""
    address = f"127.0.0.1:{free_port()}"
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "server": {"address": address, "metrics_port": None},
                "tiers": {
                    "small": {"model": "ollama_chat/llama3:8b", "api_base": small_url},
                    "large": {"model": "openai/gpt-4o", "api_key_env": "OPENAI_API_KEY"},
                },
            }
        )
    )  # the request log, if configured by default, goes to workdir (the server's working directory)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(config)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with grpc.insecure_channel(address, options=FAST_RECONNECT) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return process, address, time.perf_counter() - started
            except grpc.RpcError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            if time.perf_counter() - started > 60:
                raise SystemExit("no SERVING within 60 s")
            time.sleep(0.005)


async def load(
    address: str, pid: int, total: int, concurrency: int, complete_every: int = 0
) -> list[tuple[int, float]]:
    """Send `total` calls from `concurrency` streams (every `complete_every`-th a Complete, the rest Route);
    sample RSS at every tenth of the way."""
    prompts = varied_prompts()
    samples = [(0, rss_mb(pid))]
    step = max(1, total // 10)
    done = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.RouterStub(channel)
        if complete_every:
            await wait_completion_ready(channel)
        counter = iter(range(total))

        async def worker() -> None:
            nonlocal done
            for i in counter:
                messages = [pb.Message(role="user", content=f"{prompts[i % len(prompts)]} (request {i})")]
                if complete_every and i % complete_every == 0:
                    await stub.Complete(pb.CompleteRequest(messages=messages, force_tier="small"))
                else:
                    await stub.Route(pb.RouteRequest(messages=messages))
                done += 1
                if done % step == 0:
                    samples.append((done, rss_mb(pid)))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


def mixed_phase(workdir: Path, total: int) -> list[tuple[int, float]]:
    """RSS over `total` calls, half of them Complete (small tier forced) against a stand-in Ollama."""
    standin = StandIn("ollama", reply="ok")
    try:
        process, address, _ = start(workdir, standin.url)
        try:
            return asyncio.run(load(address, process.pid, total, 32, complete_every=2))
        finally:
            process.terminate()
            process.wait(30)
    finally:
        standin.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    total = 200 if args.smoke else args.requests
    with tempfile.TemporaryDirectory() as tmp:
        starts = []
        for _ in range(1 if args.smoke else 3):
            process, address, seconds = start(Path(tmp))
            starts.append(seconds)
            if len(starts) < (1 if args.smoke else 3):
                process.terminate()
                process.wait(30)
        try:
            samples = asyncio.run(load(address, process.pid, total, 32))
        finally:
            process.terminate()
            process.wait(30)
        mixed = mixed_phase(Path(tmp), total)
    growth = samples[-1][1] - samples[len(samples) // 2][1]
    mixed_growth = mixed[-1][1] - mixed[len(mixed) // 2][1]
    results = {
        "cold_start_s": sorted(starts)[len(starts) // 2],
        "cold_starts_s": starts,
        "rss_mb": samples,
        "rss_final_mb": samples[-1][1],
        "rss_growth_second_half_mb": growth,
        "mixed_rss_mb": mixed,
        "mixed_rss_final_mb": mixed[-1][1],
        "mixed_rss_growth_second_half_mb": mixed_growth,
    }
    print(f"cold start to SERVING: median {results['cold_start_s']:.2f} s of {[round(s, 2) for s in starts]}")
    for label, rows, grew in (("Route only", samples, growth), ("half Complete", mixed, mixed_growth)):
        print(f"{label}: RSS (MB) by requests served: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in rows))
        print(f"{label}: RSS after {total} requests: {rows[-1][1]:.0f} MB; second half {grew:+.1f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
