"""The client side of `route` and `complete`: API key and TLS options, and the channel they open."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

API_KEY_ENV = "RIGHTSIZE_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--api-key and the TLS options of a client command."""
    parser.add_argument("--api-key", help=f"the key for server.auth (default: ${API_KEY_ENV})")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (implied by --ca-file)")
    parser.add_argument("--ca-file", type=Path, help="CA certificate(s) to trust (default: system roots)")
    parser.add_argument("--cert-file", type=Path, help="client certificate, for a server with mTLS")
    parser.add_argument("--key-file", type=Path, help="client certificate's private key")


def open_channel(args: argparse.Namespace) -> Any:
    """A blocking gRPC channel to `args.address`, plaintext or TLS as the options say."""
    import grpc

    if not (args.tls or args.ca_file or args.cert_file):
        return grpc.insecure_channel(args.address)
    from router.rpc.tls import channel_credentials

    return grpc.secure_channel(args.address, channel_credentials(args.ca_file, args.cert_file, args.key_file))


def call_metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The `authorization` metadata when a key is given (flag, else environment)."""
    key = args.api_key or os.environ.get(API_KEY_ENV)
    return (("authorization", f"Bearer {key}"),) if key else ()
