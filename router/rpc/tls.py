"""TLS credentials: the server's (with mTLS when a client CA is set) and a client channel's."""

from __future__ import annotations

from pathlib import Path

import grpc

from router.config.guards import TlsSettings
from router.errors import ConfigError


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """Credentials for `add_secure_port`; client certificates are required when `client_ca_file` is set."""
    chain = _read(tls.cert_file, "server.tls.cert_file")
    key = _read(tls.key_file, "server.tls.key_file")
    client_ca = _read(tls.client_ca_file, "server.tls.client_ca_file") if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(
    ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> grpc.ChannelCredentials:
    """Client TLS: trust `ca_file` (else the system roots); present `cert_file`/`key_file` for mTLS."""
    if (cert_file is None) != (key_file is None):
        raise ConfigError("a client certificate needs both its certificate and its key file")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA file") if ca_file else None,
        private_key=_read(key_file, "client key file") if key_file else None,
        certificate_chain=_read(cert_file, "client certificate file") if cert_file else None,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
