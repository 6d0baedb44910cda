"""What the cascade costs in latency: TTFT per stream mode, and the router's own time in an escalation.

Run `python benchmarks/bench_cascade_service.py` (`--smoke`: a few rounds). An in-process server (the real
classifier, the real pipeline and LiteLLM) talks to two OpenAI-compatible stand-ins (tests/router/
standins.py): a small tier that streams one word every `--word-ms` after `--prefill-ms`, and answers a
unary call after the same total time, with log-probabilities; a large tier that answers after
`--large-ms`. Rounds alternate the variants, so all see the same machine load. Printed: p50/p95 of TTFT
(streams) and total (unary) per variant, and the escalation's own cost: escalated total - small total -
large total (the verifiers and the second call's set-up), and the issue's bound: escalated total - passing
total - the large call alone (LiteLLM straight to the large stand-in; the target is <= 5 ms). With
`--prefill-ms 0 --word-ms 0 --large-ms 0` the stand-ins answer at once, so the spread is the router's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402
from router.config import RouterConfig  # noqa: E402
from router.rpc.server import create_server  # noqa: E402
from tests.router.standins import StandIn  # noqa: E402

RIGHT, WRONG = "What is 2 + 2?", "What is 17 * 23?"
RIGHT_ANSWER = "Two plus two is four, so the answer is 4 and nothing else needs to be said here."
WRONG_ANSWER = "Seventeen times twenty-three is three hundred and eighty-one, I think, give or take."


def config(
    small: StandIn, large: StandIn, workdir: Path, mode: str, stream: str, head: Path | None = None
) -> RouterConfig:
    cascade: dict[str, Any] = {"direct_large": 1.0, "stream": stream}
    if head is not None:
        cascade["head"] = {"path": str(head)}
    return RouterConfig.model_validate(
        {
            "server": {"address": "127.0.0.1:0", "metrics_port": None},
            "tiers": {
                "small": {"model": "hosted_vllm/smol", "api_base": small.url},
                "large": {"model": "openai/gpt-4o", "api_base": large.url, "api_key": "sk-bench"},
            },
            # Everything small first: the classifier's score never decides here, only the verifiers.
            "routing": {"threshold": 1.0, "mode": mode, "cascade": cascade},
            "log": {
                "url": f"sqlite:///{workdir / f'{mode}-{stream}.db'}",
                "spill_dir": str(workdir / "spill"),
            },
        }
    )


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def ttft(stub: Any, prompt: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    async for _chunk in stub.CompleteStream(
        pb.CompleteRequest(messages=[pb.Message(role="user", content=prompt)])
    ):
        first = first or time.perf_counter()
    return (first or time.perf_counter()) - started, time.perf_counter() - started


async def unary(stub: Any, prompt: str, tier: str = "") -> float:
    started = time.perf_counter()
    request = pb.CompleteRequest(messages=[pb.Message(role="user", content=prompt)], force_tier=tier)
    await stub.Complete(request)
    return time.perf_counter() - started


async def direct_large(large: StandIn, prompt: str) -> float:
    """The large call alone: LiteLLM straight to the large stand-in (what any escalation must add)."""
    import litellm

    started = time.perf_counter()
    await litellm.acompletion(
        model="openai/gpt-4o",
        api_base=large.url,
        api_key="sk-bench",
        messages=[{"role": "user", "content": prompt}],
    )
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    small, large = StandIn("openai"), StandIn("openai", reply="The answer is 391.")
    words = len(RIGHT_ANSWER.split())
    small.delay_s, small.chunk_delay_s = args.prefill_ms / 1000, args.word_ms / 1000
    small.unary_extra_s = words * args.word_ms / 1000  # a unary answer takes as long as the whole stream
    small.answers = {RIGHT: (RIGHT_ANSWER, -0.05), WRONG: (WRONG_ANSWER, -1.5)}
    large.delay_s = args.large_ms / 1000
    servers, stubs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        from classifier.scoring import Scorer

        scorer = Scorer.from_path(ROOT / "models" / "default")
        servers_wanted: list[tuple[str, str, str, Path | None]] = [
            ("route", "route", "off", None),
            ("off", "cascade", "off", None),
            ("buffer", "cascade", "buffer", None),
        ]
        if args.compare_head is not None:
            servers_wanted.append(("compare", "cascade", "buffer", args.compare_head))
        for name, mode, stream, head in servers_wanted:
            (Path(tmp) / name).mkdir()
            server, port = create_server(
                config(small, large, Path(tmp) / name, mode, stream, head), scorer=scorer
            )
            await server.start()
            server.backend.wait_loaded(60)
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            servers.append((server, channel))
            stubs[name] = pb_grpc.RouterStub(channel)
        samples: dict[str, list[float]] = {}
        variants = {
            "stream route (small)": lambda: ttft(stubs["route"], RIGHT),
            "stream cascade off": lambda: ttft(stubs["off"], RIGHT),
            "stream cascade buffer, passes": lambda: ttft(stubs["buffer"], RIGHT),
            "stream cascade buffer, escalated": lambda: ttft(stubs["buffer"], WRONG),
            "unary route small": lambda: unary(stubs["route"], RIGHT),
            "unary route large": lambda: unary(stubs["route"], RIGHT, "large"),
            "unary cascade, passes": lambda: unary(stubs["buffer"], RIGHT),
            "unary cascade, escalated": lambda: unary(stubs["buffer"], WRONG),
            "the large call alone (LiteLLM direct)": lambda: direct_large(large, WRONG),
        }
        if args.compare_head is not None:
            variants["unary cascade, passes (--compare-head)"] = lambda: unary(stubs["compare"], RIGHT)
            variants["unary cascade, escalated (--compare-head)"] = lambda: unary(stubs["compare"], WRONG)
        for _ in range(2):  # warm-up: LiteLLM's first call per model
            for call in variants.values():
                await call()
        for _ in range(args.rounds):
            for name, call in variants.items():
                result = await call()
                samples.setdefault(name, []).append(result[0] if isinstance(result, tuple) else result)
        for server, channel in servers:
            await channel.close()
            await server.stop(0)
    small.kill()
    large.kill()
    table = {name: {"p50_ms": pct(s, 0.5), "p95_ms": pct(s, 0.95)} for name, s in samples.items()}
    for name, (total, *parts) in {
        "escalation's own time (escalated - small - large)": (
            "unary cascade, escalated",
            "unary route small",
            "unary route large",
        ),
        # The bound: an escalation adds at most the large call plus 5 ms of the router's own time.
        "escalation's added time beyond the large call (escalated - passes - large alone)": (
            "unary cascade, escalated",
            "unary cascade, passes",
            "the large call alone (LiteLLM direct)",
        ),
    }.items():
        # Per round (the variants of one round ran back to back, under the same load).
        rest = [samples[total][i] - sum(samples[p][i] for p in parts) for i in range(len(samples[total]))]
        table[name] = {"p50_ms": pct(rest, 0.5), "p95_ms": pct(rest, 0.95)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--prefill-ms", type=float, default=50)
    parser.add_argument("--word-ms", type=float, default=15)
    parser.add_argument("--large-ms", type=float, default=300)
    parser.add_argument("--smoke", action="store_true", help="3 rounds")
    parser.add_argument(
        "--compare-head", type=Path, help="also serve this answer-head directory, side by side"
    )
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    if args.smoke:
        args.rounds = 3
    table = asyncio.run(run(args))
    width = max(len(name) for name in table)
    print(f"{'variant':<{width}}  p50 ms  p95 ms  (TTFT for streams, total for unary)")
    for name, row in table.items():
        print(f"{name:<{width}}  {row['p50_ms']:6.1f}  {row['p95_ms']:6.1f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
