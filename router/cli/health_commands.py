"""`rightsize health`: one gRPC health check of a running router, for probes (Docker HEALTHCHECK, scripts)."""

from __future__ import annotations

import argparse
from typing import Any

from router.cli import CliError, client_channel
from router.cli.service_commands import DEFAULT_ADDRESS

# Exit status when the service is not SERVING; the same as when the server cannot be asked (a one-line
# error then), since probes (Docker, Kubernetes exec) only tell zero from non-zero.
NOT_SERVING = 1


def register(subparsers: Any) -> None:
    """Add the health command to the `rightsize` parser."""
    health = subparsers.add_parser(
        "health", help="check a running router's gRPC health", description=health_command.__doc__
    )
    health.add_argument("--address", default=DEFAULT_ADDRESS, help="router HOST:PORT (default: %(default)s)")
    health.add_argument(
        "--service",
        default="",
        metavar="S",
        help='"" (the server, default), rightsize.v1.Router, rightsize.v1.Router/Complete, '
        "rightsize.v1.Router/Complete/small|large",
    )
    health.add_argument("--timeout", type=float, default=5.0, help="deadline, s (default: %(default)s)")
    client_channel.add_arguments(health)
    health.set_defaults(handler=health_command)


def health_command(args: argparse.Namespace) -> int:
    """Ask grpc.health.v1.Health about one service and print one line; exit 0 when SERVING, 1 otherwise
    (NOT_SERVING, UNKNOWN, an unknown service, or a server that cannot be reached)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if args.timeout <= 0:
        raise CliError("--timeout must be positive")
    service = args.service or '""'
    with client_channel.open_channel(args) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service),
                timeout=args.timeout,
                metadata=client_channel.call_metadata(args),
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                print(f"{service} at {args.address}: SERVICE_UNKNOWN (no such health service)")
                return NOT_SERVING
            raise CliError(_unreachable(exc, args.address)) from exc
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{service} at {args.address}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING


def _unreachable(exc: Any, address: str) -> str:
    code, details = exc.code(), " ".join(str(exc.details()).split())
    if code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return f"cannot reach the router at {address}: {code.name}: {details}"
    return f"health check at {address} failed: {code.name}: {details}"
