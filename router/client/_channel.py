"""Channel construction shared by the client and the CLI: plaintext or TLS (mTLS), and the API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

API_KEY_ENV = "RIGHTSIZE_API_KEY"


def open_channel(
    address: str,
    *,
    tls: bool = False,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    aio: bool = False,
) -> Any:
    """A gRPC channel to `address` (blocking, or grpc.aio with `aio`); TLS when `tls` or any file is given.

    `ca_file`: CA certificates to trust (default: the system roots); `cert_file` + `key_file`: a client
    certificate for a server with mTLS. Raises router.errors.ConfigError for an unreadable file."""
    import grpc  # here, not at the top: the CLI imports this module, and `rightsize --help` stays instant

    module = grpc.aio if aio else grpc
    if not (tls or ca_file or cert_file):
        return module.insecure_channel(address)
    from router.rpc.tls import channel_credentials

    return module.secure_channel(address, channel_credentials(ca_file, cert_file, key_file))


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The `authorization` metadata for server.auth, empty without a key."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()
