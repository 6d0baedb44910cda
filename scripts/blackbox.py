"""Black-box walk of a real `rightsize serve`: stand-in backends, a temp config, one PASS/FAIL line per check.

    python scripts/blackbox.py [--verbose]

Starts stand-in Ollama (small tier) and OpenAI (large tier) servers on loopback, writes a config into a
temporary directory, runs `rightsize serve --config FILE` as a child process and talks to it only as a
client would: gRPC on its port, signals, and edits of its config file. Exits 1 when any check fails (the
server's log is printed then), 0 when all pass. Needs a checkout (it reuses tests/router/standins.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (  # noqa: E402
    ProtoReflectionDescriptorDatabase,
)

from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402
from tests.router.serve_process import ServeProcess  # noqa: E402
from tests.router.standins import StandIn  # noqa: E402

SMALL_REPLY, LARGE_REPLY = "small stand-in answer", "large stand-in answer"
EASY = "Turn this sentence into JSON: 'John is 35'"
HARD = (
    "Design a globally distributed, strongly consistent key-value store: explain the replication "
    "protocol, leader election, failure detection, and how you would handle network partitions and "
    "clock skew."
)
THRESHOLD = 0.35  # the shipped classifier scores EASY about 0.2 and HARD about 0.54
KEY_ENV = "RIGHTSIZE_BLACKBOX_OPENAI_KEY"
COMPLETE_HEALTH = "rightsize.v1.Router/Complete"


def _config(small: StandIn, large: StandIn, directory: Path, threshold: float) -> dict[str, Any]:
    return {
        "server": {"address": "127.0.0.1:0", "metrics_port": None, "grace_period_s": 5},
        "tiers": {
            "small": {"model": "ollama_chat/llama3:8b", "api_base": small.url, "timeout": 10},
            # StandIn.url already ends in /v1 for OpenAI, which is what LiteLLM's api_base wants.
            "large": {"model": "openai/gpt-4o", "api_base": large.url, "api_key_env": KEY_ENV, "timeout": 10},
        },
        "routing": {
            "threshold": threshold,
            "overrides": [{"metadata": {"tenant": "bigco"}, "tier": "large"}],
        },
        "log": {"url": f"sqlite:///{directory / 'requests.db'}", "spill_dir": str(directory / "spill")},
    }


def _write(path: Path, text: str) -> None:
    """Replace `path` at once, as an editor or a ConfigMap swap would."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)


class Walk:
    """Runs checks in order, printing one PASS/FAIL line each; a failed check does not stop the walk."""

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.failures = 0

    def check(self, name: str, run: Callable[[], str | None]) -> None:
        try:
            note = run()
        except Exception as exc:
            self.fail(name, exc)
        else:
            print(f"PASS {name}" + (f" ({note})" if note else ""), flush=True)

    def fail(self, name: str, exc: Exception) -> None:
        self.failures += 1
        detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        print(f"FAIL {name}: {type(exc).__name__}: {detail}", flush=True)
        if self.verbose:
            traceback.print_exception(exc)


def _status(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        return exc.code()
    return grpc.StatusCode.OK


def _health(channel: grpc.Channel, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status)


def _wait_serving(channel: grpc.Channel, service: str, timeout_s: float) -> float:
    started = time.monotonic()
    while _health(channel, service) != health_pb2.HealthCheckResponse.SERVING:
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{service or 'the server'} not SERVING after {timeout_s:g} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _messages(text: str) -> list[pb.Message]:
    return [pb.Message(role="user", content=text)]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


@contextmanager
def _standins() -> Iterator[tuple[StandIn, StandIn]]:
    small, large = StandIn("ollama", reply=SMALL_REPLY), StandIn("openai", reply=LARGE_REPLY)
    try:
        yield small, large
    finally:
        small.kill()
        large.kill()


def walk(verbose: bool = False) -> int:
    """Run every check against a fresh server; the number of failed checks."""
    checks = Walk(verbose)
    with tempfile.TemporaryDirectory(prefix="rightsize-blackbox-") as scratch, _standins() as (small, large):
        directory = Path(scratch)
        config_path = directory / "router.yaml"
        _write(config_path, json.dumps(_config(small, large, directory, THRESHOLD), indent=2))  # JSON is YAML
        server = ServeProcess(config_path, env={KEY_ENV: "sk-blackbox"})
        try:
            address = server.wait_for_line(r"serving rightsize\.v1\.Router on (\S+:\d+)", 30).group(1)
            with grpc.insecure_channel(address) as channel:
                _walk_server(checks, server, channel, small, large, config_path)
        except Exception as exc:  # e.g. the server never came up: the checks after it cannot run
            checks.fail("the walk", exc)
        finally:
            server.stop()
        if checks.failures:
            print("--- server log ---\n" + "\n".join(server.lines[-60:]), file=sys.stderr)
    return checks.failures


def _walk_server(
    checks: Walk,
    server: ServeProcess,
    channel: grpc.Channel,
    small: StandIn,
    large: StandIn,
    config_path: Path,
) -> None:
    stub = pb_grpc.RouterStub(channel)

    def route(text: str, **fields: Any) -> pb.Decision:
        return stub.Route(pb.RouteRequest(messages=_messages(text), **fields), timeout=5).decision

    checks.check("standard health service is SERVING", lambda: f"{_wait_serving(channel, '', 30):.1f} s")

    def easy_and_hard() -> str:
        easy, hard = route(EASY), route(HARD)
        _expect((easy.tier, hard.tier) == ("small", "large"), f"tiers {easy.tier}/{hard.tier}")
        return f"scores {easy.score:.2f} / {hard.score:.2f}, threshold {easy.threshold:g}"

    checks.check("Route: an easy prompt goes small, a hard one large", easy_and_hard)

    def tenant_override() -> str:
        decision = route(EASY, metadata={"tenant": "bigco"})
        _expect(decision.tier == "large" and "override[0]" in decision.reason, decision.reason)
        return decision.reason

    checks.check("Route: a tenant override decides, and says so", tenant_override)
    checks.check(
        "Complete's health service is SERVING (LiteLLM loaded)",
        lambda: f"{_wait_serving(channel, COMPLETE_HEALTH, 30):.1f} s",
    )

    def complete(text: str, reply: str, tier: str, standin: StandIn) -> Callable[[], str]:
        def run() -> str:
            seen = len(standin.requests)
            answer = stub.Complete(pb.CompleteRequest(messages=_messages(text)), timeout=15)
            _expect(
                (answer.text, answer.decision.tier, answer.fallback) == (reply, tier, False),
                f"{answer.text!r} from {answer.decision.tier}, fallback={answer.fallback}",
            )
            _expect(len(standin.requests) > seen, "the stand-in was not called")
            return f"{answer.model}, {answer.usage.completion_tokens} tokens"

        return run

    checks.check("Complete: small tier (Ollama stand-in)", complete(EASY, SMALL_REPLY, "small", small))
    checks.check("Complete: large tier (OpenAI stand-in)", complete(HARD, LARGE_REPLY, "large", large))

    def stream() -> str:
        chunks = list(stub.CompleteStream(pb.CompleteRequest(messages=_messages(EASY)), timeout=15))
        _expect("".join(chunk.delta for chunk in chunks) == SMALL_REPLY, "the deltas do not add up")
        _expect(chunks[0].decision.tier == "small" and chunks[-1].finish_reason == "stop", "first/last")
        return f"{len(chunks)} chunks"

    checks.check("CompleteStream: deltas, decision first, finish_reason last", stream)

    def bad_inputs() -> str:
        garbage = channel.unary_unary("/rightsize.v1.Router/Route")  # raw bytes, no serializer
        calls = {
            "no messages": lambda: stub.Route(pb.RouteRequest(), timeout=5),
            "unknown role": lambda: stub.Route(
                pb.RouteRequest(messages=[pb.Message(role="robot", content="hi")]), timeout=5
            ),
            "unknown force_tier": lambda: stub.Complete(
                pb.CompleteRequest(messages=_messages("hi"), force_tier="medium"), timeout=5
            ),
            "garbage bytes": lambda: garbage(b"\xff\xfe not a protobuf", timeout=5),
        }
        codes = {name: _status(call) for name, call in calls.items()}
        wrong = {name: code.name for name, code in codes.items() if code != grpc.StatusCode.INVALID_ARGUMENT}
        _expect(not wrong, f"not INVALID_ARGUMENT: {wrong}")
        _expect(_health(channel, "") == health_pb2.HealthCheckResponse.SERVING, "no longer SERVING")
        return f"{len(codes)} kinds, still SERVING"

    checks.check("bad inputs get INVALID_ARGUMENT", bad_inputs)

    def reflection() -> str:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        wanted = {"rightsize.v1.Router", "grpc.health.v1.Health"}
        _expect(wanted <= services, f"listed {sorted(services)}")
        return ", ".join(sorted(services))

    checks.check("reflection lists the services", reflection)

    def fallback() -> str:
        small.kill()
        answer = stub.Complete(pb.CompleteRequest(messages=_messages(EASY)), timeout=15)
        _expect((answer.text, answer.fallback) == (LARGE_REPLY, True), f"{answer.text!r}, {answer.fallback}")
        return answer.fallback_reason[:80]

    checks.check("small stand-in killed: Complete falls back to large", fallback)
    _walk_reload(checks, server, channel, route, config_path, small, large)

    def sigterm() -> str:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(20)
        _expect(code == 0, f"exit code {code}")
        return "exit 0"

    checks.check("SIGTERM drains and exits 0", sigterm)


def _walk_reload(
    checks: Walk,
    server: ServeProcess,
    channel: grpc.Channel,
    route: Callable[..., pb.Decision],
    config_path: Path,
    small: StandIn,
    large: StandIn,
) -> None:
    def flip() -> str:
        _write(config_path, json.dumps(_config(small, large, config_path.parent, 0.0)))
        server.process.send_signal(signal.SIGHUP)  # the file is also polled; SIGHUP makes it immediate
        deadline = time.monotonic() + 5
        while (decision := route(EASY)).tier != "large":
            _expect(time.monotonic() < deadline, "the decision did not flip within 5 s")
            time.sleep(0.05)
        return f"threshold {decision.threshold:g}"

    checks.check("config reload: a new threshold applies live", flip)

    def garbage() -> str:
        _write(config_path, "routing: {threshold: [garbage\n")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for_line(r"config reload rejected, still serving the previous config", 5)
        decision = route(EASY)
        kept = (decision.tier, decision.threshold) == ("large", 0.0)
        _expect(kept, f"{decision.tier} at threshold {decision.threshold:g}")
        _expect(_health(channel, "") == health_pb2.HealthCheckResponse.SERVING, "no longer SERVING")
        return "previous config kept"

    checks.check("config reload: a garbage file is rejected", garbage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print a traceback for each failed check")
    failures = walk(parser.parse_args().verbose)
    print(f"FAIL: {failures} check(s) failed" if failures else "PASS: every check")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
