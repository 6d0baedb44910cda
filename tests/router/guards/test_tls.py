"""TLS and mTLS on a real server, with certificates made for the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.config import RouterConfig
from router.config.guards import TlsSettings
from router.rpc.tls import channel_credentials
from tests.router.conftest import Running, StartServer
from tests.router.guards.certs import TestCA
from tests.router.guards.helpers import status_of, with_server
from tests.router.support import KeyedScorer, user

REQUEST = pb.RouteRequest(messages=user("hi"))


async def _route(address: str, credentials: grpc.ChannelCredentials | None) -> pb.RouteResponse:
    channel = (
        grpc.aio.secure_channel(address, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(address)
    )
    async with channel:
        return await pb_grpc.RouterStub(channel).Route(REQUEST, timeout=5)


async def _tls_server(
    start_server: StartServer, make_config: Callable[..., RouterConfig], ca: TestCA, client_ca: Path | None
) -> Running:
    issued = ca.issue("server", server=True)
    tls = TlsSettings(cert_file=issued.cert_file, key_file=issued.key_file, client_ca_file=client_ca)
    return await start_server(
        with_server(make_config(), tls=tls), with_scorer=KeyedScorer(), wait_completion=False
    )


async def test_tls_refuses_plaintext_and_untrusted_servers(
    start_server: StartServer, make_config: Callable[..., RouterConfig], tmp_path: Path
) -> None:
    ca, stranger = TestCA(tmp_path, "good"), TestCA(tmp_path, "stranger")
    server = await _tls_server(start_server, make_config, ca, None)

    assert (await _route(server.address, channel_credentials(ca.ca_file))).decision.tier == "small"
    plaintext = await status_of(_route(server.address, None))
    assert plaintext.code() == grpc.StatusCode.UNAVAILABLE
    wrong_ca = await status_of(_route(server.address, channel_credentials(stranger.ca_file)))
    assert wrong_ca.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate_from_the_client_ca(
    start_server: StartServer, make_config: Callable[..., RouterConfig], tmp_path: Path
) -> None:
    ca, stranger = TestCA(tmp_path, "good"), TestCA(tmp_path, "stranger")
    server = await _tls_server(start_server, make_config, ca, ca.ca_file)
    client, foreign = ca.issue("client", server=False), stranger.issue("client", server=False)

    good = channel_credentials(ca.ca_file, client.cert_file, client.key_file)
    assert (await _route(server.address, good)).decision.tier == "small"
    no_cert = await status_of(_route(server.address, channel_credentials(ca.ca_file)))
    assert no_cert.code() == grpc.StatusCode.UNAVAILABLE
    signed_elsewhere = channel_credentials(ca.ca_file, foreign.cert_file, foreign.key_file)
    assert (await status_of(_route(server.address, signed_elsewhere))).code() == grpc.StatusCode.UNAVAILABLE


def test_a_missing_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    from router.errors import ConfigError
    from router.rpc.tls import server_credentials

    with pytest.raises(ConfigError, match="server.tls.cert_file: cannot read"):
        server_credentials(TlsSettings(cert_file=tmp_path / "none.pem", key_file=tmp_path / "none.key"))


async def test_the_cli_client_talks_tls_with_an_api_key(
    start_server: StartServer,
    make_config: Callable[..., RouterConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import json

    from router.cli import main
    from router.config.guards import ApiKeyEntry, AuthSettings
    from router.rpc.auth import create_key

    ca = TestCA(tmp_path, "good")
    issued, client = ca.issue("server", server=True), ca.issue("client", server=False)
    tls = TlsSettings(cert_file=issued.cert_file, key_file=issued.key_file, client_ca_file=ca.ca_file)
    key = create_key()
    config = with_server(make_config(), tls=tls, auth=AuthSettings(api_keys=(ApiKeyEntry(hash=key.hash),)))
    server = await start_server(config, with_scorer=KeyedScorer(), wait_completion=False)
    args = [
        "route",
        "hi",
        "--json",
        "--address",
        server.address,
        "--ca-file",
        str(ca.ca_file),
        "--cert-file",
        str(client.cert_file),
        "--key-file",
        str(client.key_file),
    ]
    monkeypatch.setenv("RIGHTSIZE_API_KEY", key.key)
    assert await asyncio.to_thread(main, args) == 0
    assert json.loads(capsys.readouterr().out)["tier"] == "small"
    monkeypatch.delenv("RIGHTSIZE_API_KEY")
    assert await asyncio.to_thread(main, args) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
