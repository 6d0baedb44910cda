"""`rightsize keys create`: a new client API key, printed once, with the hash line for the config."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the `keys` command group to the `rightsize` parser."""
    keys = subparsers.add_parser("keys", help="client API keys for server.auth")
    commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND")
    commands.required = True
    create = commands.add_parser("create", help="make a new key", description=create_command.__doc__)
    create.add_argument("--tenant", help="bind the key to this tenant (requests for another are refused)")
    create.add_argument("--json", action="store_true", help='print {"key", "hash", "tenant"} as JSON')
    create.set_defaults(handler=create_command)


def create_command(args: argparse.Namespace) -> int:
    """Print a new random key (shown only now: store it in the client's secret store) and the line to add
    under server.auth.api_keys; the server keeps only that salted scrypt hash."""
    from router.rpc.auth import create_key

    issued = create_key(args.tenant or None)
    if args.json:
        print(json.dumps({"key": issued.key, "hash": issued.hash, "tenant": issued.tenant}))
        return 0
    entry = {"hash": issued.hash, **({"tenant": issued.tenant} if issued.tenant else {})}
    print(f"key:  {issued.key}")
    print("      (shown once; clients send it as 'authorization: Bearer <key>' or RIGHTSIZE_API_KEY)")
    print("config (server.auth.api_keys):")
    print(f"  - {json.dumps(entry)}")
    return 0
