"""The first seconds after start, from outside: `rightsize serve` on its defaults, measured from the moment
the standard gRPC health service first reports SERVING.

    python benchmarks/bench_warmup.py [--smoke] [--repeat N] [--seconds S] [--json FILE]

Each run starts a fresh server (in a temporary working directory, so its request log and the embedded
llama.cpp child's files stay there; the ports are free loopback ports, everything else is the shipped
default), polls `Health.Check("")` every 5 ms from exec on, then one client sends Route back to back for
`--seconds` seconds while another polls the Complete service's health. Route p50 is taken over each
1-second window from the first SERVING on; the steady state is the p50 of the last 3 seconds. Figures:
exec -> SERVING, exec -> Complete ready, and the worst window's p50 over the steady state (target <= 1.3).
The embedder file the server chose (`scoring.embedder: auto`) is read from its start-up lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from benchmarks.bench_service import PROMPTS  # noqa: E402
from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402

COMPLETION_HEALTH_SERVICE = "rightsize.v1.Router/Complete"
STEADY_S = 3.0  # the steady state: the run's last seconds
SERVING = health_pb2.HealthCheckResponse.SERVING


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def first_serving(stub: health_pb2_grpc.HealthStub, service: str, deadline: float) -> float:
    """time.perf_counter() of the first Check(service) answered SERVING (polled every 5 ms)."""
    request = health_pb2.HealthCheckRequest(service=service)
    while time.perf_counter() < deadline:
        try:
            reply = await stub.Check(request, timeout=0.5)
            if reply.status == SERVING:
                return time.perf_counter()
        except grpc.aio.AioRpcError:
            pass  # not listening yet, or the service is not registered yet
        await asyncio.sleep(0.005)
    raise SystemExit(f"{service or 'the server'} never reported SERVING")


async def one_run(seconds: float) -> dict[str, float | list[float]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rightsize-warmup-") as workdir:
        command = [
            sys.executable,
            "-m",
            "router",
            "serve",
            "--address",
            f"127.0.0.1:{port}",
            "--metrics-port",
            str(free_port()),
            "--http-address",
            f"127.0.0.1:{free_port()}",
            "--log-level",
            "INFO",  # start-up lines only (Route logs nothing at INFO): which embedder file was chosen
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        log_path = Path(workdir) / "serve.log"
        log_file = log_path.open("w")
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                serving = await first_serving(health, "", started + 60)
                complete = asyncio.ensure_future(
                    first_serving(health, COMPLETION_HEALTH_SERVICE, serving + 60)
                )
                stub = pb_grpc.RouterStub(channel)
                samples: list[tuple[float, float]] = []  # (seconds after SERVING, latency s)
                i = 0
                while (now := time.perf_counter()) - serving < seconds:
                    message = pb.Message(role="user", content=PROMPTS[i % len(PROMPTS)])
                    await stub.Route(pb.RouteRequest(messages=[message]))
                    samples.append((now - serving, time.perf_counter() - now))
                    i += 1
                complete_ready = await complete
        finally:
            process.terminate()
            process.wait(30)
            log_file.close()
        chosen = re.search(r"embedder (\S+) \(scoring\.embedder", log_path.read_text())
    windows = [
        statistics.median([lat for t, lat in samples if w <= t < w + 1]) * 1000
        for w in range(int(seconds))
        if any(w <= t < w + 1 for t, _ in samples)
    ]
    steady = statistics.median([lat for t, lat in samples if t >= seconds - STEADY_S]) * 1000
    return {
        "serving_s": serving - started,
        "complete_ready_s": complete_ready - started,
        "window_p50_ms": windows,
        "steady_p50_ms": steady,
        "worst_window_ratio": max(windows) / steady,
        "embedder": chosen.group(1) if chosen else "?",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one short run, to keep the code alive in CI")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="Route traffic per run, from SERVING on")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    repeat, seconds = (1, 4.0) if args.smoke else (args.repeat, max(args.seconds, STEADY_S + 2))
    runs = [asyncio.run(one_run(seconds)) for _ in range(repeat)]
    print(
        f"{'run':>4} {'exec->SERVING s':>16} {'exec->Complete ready s':>23} {'steady p50 ms':>14} "
        f"{'worst 1-s window / steady':>26} {'embedder file':>21}  per-window p50 ms"
    )
    for n, run in enumerate(runs, 1):
        windows = " ".join(f"{w:.2f}" for w in run["window_p50_ms"])  # type: ignore[union-attr]
        print(
            f"{n:>4} {run['serving_s']:>16.2f} {run['complete_ready_s']:>23.2f} "
            f"{run['steady_p50_ms']:>14.2f} {run['worst_window_ratio']:>25.2f}x "
            f"{run['embedder']:>21}  {windows}"
        )
    worst = max(float(run["worst_window_ratio"]) for run in runs)  # type: ignore[arg-type]
    print(
        f"warm-up: worst 1-s window's Route p50 / steady state = {worst:.2f}x over {repeat} runs "
        "(target <= 1.3x)"
    )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
