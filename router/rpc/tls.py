"""TLS credentials: the server's (with mTLS when a client CA is set) for gRPC and the HTTP door, and a
client channel's."""

from __future__ import annotations

import ssl
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


def server_ssl_context(tls: TlsSettings, section: str = "server.tls") -> ssl.SSLContext:
    """The HTTP door's TLS, as gRPC's: TLS 1.2 or later, client certificates required when
    `client_ca_file` is set. A file that cannot be read or a key that does not match is a ConfigError
    naming `section`'s key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for name in ("cert_file", "key_file"):
        _read(getattr(tls, name), f"{section}.{name}")  # a missing file named as gRPC's check names it
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        raise ConfigError(f"{section}: cert_file and key_file do not load as a pair: {exc}") from exc
    if tls.client_ca_file is not None:
        _read(tls.client_ca_file, f"{section}.client_ca_file")
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(f"{section}.client_ca_file: not a PEM CA certificate: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


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
