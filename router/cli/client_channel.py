"""The client side of `route` and `complete`: API key and TLS options, and the channel they open."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from router.client._channel import API_KEY_ENV, auth_metadata
from router.client._channel import open_channel as _open_channel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--api-key and the TLS options of a client command."""
    parser.add_argument("--api-key", help=f"the key for server.auth (default: ${API_KEY_ENV})")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (implied by --ca-file)")
    parser.add_argument("--ca-file", type=Path, help="CA certificate(s) to trust (default: system roots)")
    parser.add_argument("--cert-file", type=Path, help="client certificate, for a server with mTLS")
    parser.add_argument("--key-file", type=Path, help="client certificate's private key")


def open_channel(args: argparse.Namespace) -> Any:
    """A blocking gRPC channel to `args.address`, plaintext or TLS as the options say."""
    return _open_channel(
        args.address, tls=args.tls, ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file
    )


def call_metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The `authorization` metadata when a key is given (flag, else environment)."""
    return auth_metadata(args.api_key or os.environ.get(API_KEY_ENV))
