"""The HTTP door's cost: Complete (decision + stand-in answer) through HTTP against the same through gRPC.

Run `python benchmarks/bench_http.py` (or `--smoke` for the tiny CI run). One `rightsize serve` subprocess
serves both doors over the same pipeline; the tier is the Ollama stand-in (tests/router/standins.py). The
clients are lean on both sides, so the difference is the doors': a grpc.aio stub, and an aiohttp session
posting OpenAI JSON with keep-alive. Rounds alternate gRPC and HTTP (one client, then `--concurrency`
clients), so both see the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import grpc  # noqa: E402

from benchmarks.bench_service import PROMPTS, percentiles, timed, user_message, wait_completion_ready  # noqa: E402
from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402
from tests.router.standins import StandIn  # noqa: E402

Results = dict[str, dict[str, float]]
SERVING = re.compile(r"serving rightsize\.v1\.Router on (\S+:\d+).*OpenAI-compatible HTTP on (http://\S+/v1)")


def start_server(standin: StandIn, workdir: Path, model_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """`rightsize serve` with both doors on free ports; returns (process, gRPC address, HTTP base URL)."""
    config = {
        "server": {"address": "127.0.0.1:0", "metrics_port": None, "http": {"address": "127.0.0.1:0"}},
        "tiers": {
            "small": {"model": "ollama_chat/llama3:8b", "api_base": standin.url},
            "large": {"model": "ollama_chat/llama3:70b", "api_base": standin.url},
        },
        "routing": {"threshold": 1.0},  # everything to small: one stand-in, one path
        "models": {"dir": str(model_dir.parent), "active": model_dir.name},
        "log": {"url": f"sqlite:///{workdir / 'requests.db'}", "spill_dir": str(workdir / "spill")},
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
        if match := SERVING.search(line):
            return process, match.group(1), match.group(2)
    raise SystemExit(f"the server did not start (exit {process.wait()})")


async def bench(address: str, base_url: str, n: int, warmup: int, concurrency: int) -> Results:
    samples: dict[str, list[float]] = {}
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with (
        grpc.aio.insecure_channel(address) as channel,
        aiohttp.ClientSession(connector=connector) as http,
    ):
        stub = pb_grpc.RouterStub(channel)
        await wait_completion_ready(channel)

        def over_grpc(i: int) -> Awaitable[object]:
            return stub.Complete(pb.CompleteRequest(messages=[user_message(i)]))

        async def over_http(i: int) -> object:
            body = {"model": "auto", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}
            async with http.post(base_url + "/chat/completions", json=body) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        for clients in (1, concurrency):
            await timed(warmup, over_grpc, clients)
            await timed(warmup, over_http, clients)
            for _ in range(2):  # alternate halves: both doors see the same minutes of machine load
                for door, call in (("gRPC", over_grpc), ("HTTP", over_http)):
                    name = f"Complete {door}, {clients} client{'s' if clients > 1 else ''}"
                    samples.setdefault(name, []).extend(await timed(n // 2, call, clients))
    return {name: percentiles(values) for name, values in samples.items()}


def report(results: Results, concurrency: int) -> str:
    lines = [f"{'figure':34} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"]
    for name, row in results.items():
        lines.append(f"{name:34} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['mean_ms']:8.2f}")
    for clients in (1, concurrency):
        suffix = f"{clients} client{'s' if clients > 1 else ''}"
        grpc_row, http_row = results[f"Complete gRPC, {suffix}"], results[f"Complete HTTP, {suffix}"]
        lines.append(
            f"HTTP over gRPC, {suffix}: {http_row['p50_ms'] - grpc_row['p50_ms']:+.2f} ms p50, "
            f"{http_row['p99_ms'] - grpc_row['p99_ms']:+.2f} ms p99 (target: <= +1 ms p50)"
        )
    return "\n".join(lines)


async def run(model_dir: Path, n: int, warmup: int, concurrency: int) -> Results:
    standin = StandIn("ollama", reply="ok")
    os.environ["OLLAMA_API_BASE"] = standin.url  # LiteLLM's model lookups go to the stand-in too
    try:
        with tempfile.TemporaryDirectory() as workdir:
            process, address, base_url = start_server(standin, Path(workdir), model_dir)
            try:
                return await bench(address, base_url, n, warmup, concurrency)
            finally:
                process.terminate()
                process.wait(30)
    finally:
        standin.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the benchmark still runs")
    parser.add_argument("-n", type=int, default=400, help="timed calls per door and concurrency")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default", help="model directory")
    args = parser.parse_args(argv)
    n, warmup, concurrency = (8, 2, 2) if args.smoke else (args.n, 40, args.concurrency)
    results = asyncio.run(run(args.model.resolve(), n, warmup, concurrency))
    print(report(results, concurrency))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
