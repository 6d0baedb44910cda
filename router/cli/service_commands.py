"""`rightsize serve`, `route` and `complete`: run the gRPC service, and talk to it as a human client."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from router.cli import CliError, client_channel, read_schema_file

DEFAULT_ADDRESS = "127.0.0.1:50051"  # server.address of router/default_config.yaml (a test checks it)


def register(subparsers: Any) -> None:
    """Add the serve, route and complete commands to the `rightsize` parser."""
    serve = subparsers.add_parser("serve", help="run the gRPC router", description=serve_command.__doc__)
    serve.add_argument("--config", type=Path, help="YAML config (default: router/default_config.yaml)")
    serve.add_argument("--address", help="HOST:PORT to listen on (overrides server.address; port 0: any)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus port (overrides server.metrics_port)")
    serve.add_argument(
        "--http-address", help="HOST:PORT of the OpenAI-compatible HTTP door (overrides server.http.address)"
    )
    serve.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    serve.set_defaults(handler=serve_command)

    route = subparsers.add_parser(
        "route", help="ask a running router which tier a prompt goes to", description=route_command.__doc__
    )
    _client_arguments(route, timeout=10.0)
    route.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    route.set_defaults(handler=route_command)

    complete = subparsers.add_parser(
        "complete", help="route a prompt and print the model's answer", description=complete_command.__doc__
    )
    _client_arguments(complete, timeout=120.0)
    complete.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    complete.add_argument("--tier", choices=("small", "large"), help="force a tier (no fallback)")
    complete.add_argument("--max-tokens", type=int, help="> 0")
    complete.add_argument("--temperature", type=float, help="in [0, 2]")
    complete.add_argument("--top-p", type=float, help="in (0, 1]")
    complete.add_argument("--seed", type=int, help="sampling seed, for providers that support one")
    complete.add_argument("--stop", action="append", default=[], help="a stop sequence (repeatable, <= 4)")
    complete.add_argument(
        "--schema", type=Path, metavar="FILE", help="a JSON Schema the answer must fit (response_format)"
    )
    complete.add_argument("--json", action="store_true", help="ask for any JSON object (json_object)")
    complete.set_defaults(handler=complete_command)


def _client_arguments(parser: argparse.ArgumentParser, *, timeout: float) -> None:
    parser.add_argument("text", help="the user message")
    parser.add_argument("--system", help="a system message sent before it")
    parser.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="request metadata (repeatable), e.g. tenant=acme",
    )
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="router HOST:PORT (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=timeout, help="deadline, s (default: %(default)s)")
    client_channel.add_arguments(parser)


def serve_command(args: argparse.Namespace) -> int:
    """Serve rightsize.v1.Router until SIGTERM/SIGINT, then drain in-flight calls and exit 0."""
    import asyncio
    import logging

    from router.memory import tune_malloc

    tune_malloc()  # before any thread starts (see router.memory)
    from router.config import load_config, with_server
    from router.config.reload import ConfigSource
    from router.rpc.server import serve

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    http = None if args.http_address is None else {"address": args.http_address}
    flags = {"address": args.address, "metrics_port": args.metrics_port, "http": http}
    if args.config is None:
        config = with_server(load_config(None), **flags)
        return asyncio.run(serve(config))
    # With --config the file is watched, and reloaded with the same flags on top (see router.config.reload).
    source = ConfigSource(args.config, flags)
    return asyncio.run(serve(source.load(), source))


def route_command(args: argparse.Namespace) -> int:
    """Print the routing decision for TEXT: tier, model, score, threshold, reason, latency."""
    from router._proto import router_pb2 as pb

    request = pb.RouteRequest(messages=_messages(args), metadata=_metadata(args.metadata))
    started = time.perf_counter()
    response = _call(args, "Route", request)
    latency_ms = (time.perf_counter() - started) * 1000
    decision = response.decision
    if args.json:
        import json

        print(
            json.dumps(
                {
                    "request_id": response.request_id,
                    "tier": decision.tier,
                    "model": decision.model,
                    "score": decision.score,
                    "threshold": decision.threshold,
                    "reason": decision.reason,
                    "classifier_version": decision.classifier_version,
                    "latency_ms": round(latency_ms, 3),
                }
            )
        )
        return 0
    print(f"tier       {decision.tier}")
    print(f"model      {decision.model}")
    print(f"score      {decision.score:.3f} (threshold {decision.threshold:g})")
    print(f"reason     {decision.reason}")
    print(f"classifier {decision.classifier_version}")
    print(f"latency    {latency_ms:.1f} ms")
    print(f"request_id {response.request_id}")
    return 0


def complete_command(args: argparse.Namespace) -> int:
    """Route TEXT and print the answer on stdout; tier, score, model, usage, cost and latency on stderr."""
    from router._proto import router_pb2 as pb

    # The server validates every value (INVALID_ARGUMENT, printed as one line); nothing is checked twice here.
    params = pb.GenerationParams(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        stop=args.stop,
    )
    request = pb.CompleteRequest(
        messages=_messages(args),
        metadata=_metadata(args.metadata),
        params=params,
        force_tier=args.tier or "",
        response_format=_response_format(args),
    )
    started = time.perf_counter()
    checked = request.response_format.type != "text"
    if not args.stream:
        response = _call(args, "Complete", request)
        _print_decision(response.decision, response.model, response.fallback, response.fallback_reason)
        print(response.text)
        for call in response.tool_calls:
            print(f"[tool call] {call.name}({call.arguments_json})", file=sys.stderr)
        if checked:
            print(f"[schema_valid {str(response.schema_valid).lower()}]", file=sys.stderr)
        _print_footer(response.usage, response.cost_usd, response.finish_reason, started)
        return 0
    last = None
    for chunk in _stream(args, request):
        if chunk.HasField("decision"):
            _print_decision(chunk.decision, chunk.model, chunk.fallback, chunk.fallback_reason)
        print(chunk.delta, end="", flush=True)
        last = chunk
    print()
    if last is not None:
        if checked:
            print(f"[schema_valid {str(last.schema_valid).lower()}]", file=sys.stderr)
        _print_footer(last.usage, last.cost_usd, last.finish_reason, started)
    return 0


def _response_format(args: argparse.Namespace) -> Any:
    from router._proto import router_pb2 as pb

    if args.schema is not None and args.json:
        raise CliError("give --schema FILE or --json, not both")
    if args.schema is not None:
        text, name = read_schema_file("--schema", args.schema)
        return pb.ResponseFormat(type="json_schema", json_schema=text, schema_name=name)
    return pb.ResponseFormat(type="json_object" if args.json else "text")


def _print_decision(decision: Any, model: str, fallback: bool, fallback_reason: str) -> None:
    score = f"score {decision.score:.3f} (threshold {decision.threshold:g}; {decision.reason})"
    print(f"[{decision.tier}] {decision.model}  {score}", file=sys.stderr)
    if fallback:
        print(f"[fallback] answered by {model}: {fallback_reason}", file=sys.stderr)


def _print_footer(usage: Any, cost_usd: float, finish_reason: str, started: float) -> None:
    latency_ms = (time.perf_counter() - started) * 1000
    print(
        f"[{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens, ${cost_usd:.6f}, "
        f"{finish_reason or 'no finish reason'}, {latency_ms:.0f} ms]",
        file=sys.stderr,
    )


def _messages(args: argparse.Namespace) -> list[Any]:
    from router._proto import router_pb2 as pb

    messages = [pb.Message(role="system", content=args.system)] if args.system else []
    return [*messages, pb.Message(role="user", content=args.text)]


def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--metadata expects KEY=VALUE, got {pair!r}")
        metadata[key] = value
    return metadata


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    """One unary RPC; a gRPC failure becomes a one-line CliError."""
    import grpc

    from router._proto import router_pb2_grpc as pb_grpc

    with client_channel.open_channel(args) as channel:
        try:
            return getattr(pb_grpc.RouterStub(channel), method)(
                request, timeout=args.timeout, metadata=client_channel.call_metadata(args)
            )
        except grpc.RpcError as exc:
            raise CliError(_rpc_error_message(exc, args.address)) from exc


def _stream(args: argparse.Namespace, request: Any) -> Iterator[Any]:
    """CompleteStream's chunks as they arrive; a gRPC failure (even mid-stream) becomes a CliError."""
    import grpc

    from router._proto import router_pb2_grpc as pb_grpc

    with client_channel.open_channel(args) as channel:
        try:
            yield from pb_grpc.RouterStub(channel).CompleteStream(
                request, timeout=args.timeout, metadata=client_channel.call_metadata(args)
            )
        except grpc.RpcError as exc:
            raise CliError(_rpc_error_message(exc, args.address)) from exc


def _rpc_error_message(exc: Any, address: str) -> str:
    code, details = exc.code(), exc.details()
    if code.name == "UNAVAILABLE" and "failed to connect to all addresses" in details:
        return f"cannot reach the router at {address}: {details}"
    return f"{code.name}: {details}"
