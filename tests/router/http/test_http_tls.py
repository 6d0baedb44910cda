"""TLS on the HTTP door: by default the gRPC server's (`server.tls`, mTLS included), its own certificate
(`server.http.tls`), or plain HTTP beside TLS gRPC (`tls: off`). Real server, test-made certificates."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from router.config import RouterConfig, with_server
from router.config.guards import TlsSettings
from router.errors import ConfigError
from router.rpc.server import create_server
from router.rpc.tls import channel_credentials
from tests.router.conftest import StartServer
from tests.router.guards.certs import Issued, TestCA
from tests.router.guards.test_tls import _route
from tests.router.http.conftest import Door, StartDoor
from tests.router.support import KeyedScorer

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def _tls(issued: Issued, client_ca: Path | None = None) -> dict[str, object]:
    return {"cert_file": issued.cert_file, "key_file": issued.key_file, "client_ca_file": client_ca}


def _client_context(ca: TestCA, client: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    if client is not None:
        context.load_cert_chain(client.cert_file, client.key_file)
    return context


async def _get(url: str, context: ssl.SSLContext | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context or False) as reply:
        return reply.status


async def _chat(url: str, context: ssl.SSLContext) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=CHAT, ssl=context) as reply,
    ):
        assert reply.status == 200, await reply.text()
        return dict(await reply.json())


async def test_the_door_serves_the_grpc_servers_tls_and_refuses_plain_http(
    start_door: StartDoor, make_config: Callable[..., RouterConfig], tmp_path: Path
) -> None:
    ca, stranger = TestCA(tmp_path, "good"), TestCA(tmp_path, "stranger")
    tls = TlsSettings(**_tls(ca.issue("server", server=True)))  # type: ignore[arg-type]
    door = await start_door(make_config(), with_scorer=KeyedScorer(), tls=tls)
    assert door.running.server.http is not None and door.running.server.http.scheme == "https"
    https = door.url.replace("http://", "https://")

    assert await _get(https + "/healthz", _client_context(ca)) == 200
    reply = await _chat(https, _client_context(ca))
    assert reply["object"] == "chat.completion" and reply["choices"]
    with pytest.raises(aiohttp.ClientError):  # plain HTTP to a TLS port: no HTTP reply
        await _get(door.url + "/healthz")
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get(https + "/healthz", _client_context(stranger))


async def test_mtls_on_the_door_requires_a_client_certificate_from_the_client_ca(
    start_door: StartDoor, make_config: Callable[..., RouterConfig], tmp_path: Path
) -> None:
    ca, stranger = TestCA(tmp_path, "good"), TestCA(tmp_path, "stranger")
    tls = TlsSettings(**_tls(ca.issue("server", server=True), ca.ca_file))  # type: ignore[arg-type]
    door = await start_door(make_config(), with_scorer=KeyedScorer(), tls=tls)
    https = door.url.replace("http://", "https://")

    assert await _get(https + "/healthz", _client_context(ca, ca.issue("client", server=False))) == 200
    for context in (_client_context(ca), _client_context(ca, stranger.issue("client", server=False))):
        with pytest.raises(aiohttp.ClientError):  # the handshake (or the first read) fails
            await _get(https + "/healthz", context)


async def test_tls_off_serves_plain_http_beside_tls_grpc_and_its_own_section_another_certificate(
    start_server: StartServer, make_config: Callable[..., RouterConfig], tmp_path: Path
) -> None:
    grpc_ca, http_ca = TestCA(tmp_path, "grpc"), TestCA(tmp_path, "http")
    tls = TlsSettings(**_tls(grpc_ca.issue("server", server=True)))  # type: ignore[arg-type]

    async def start(http_tls: object) -> Door:
        http = {"address": "127.0.0.1:0", "tls": http_tls}
        config = with_server(make_config(), tls=tls, http=http)
        return Door(await start_server(config, with_scorer=KeyedScorer()))

    plain = await start("off")
    assert plain.running.server.http is not None and plain.running.server.http.scheme == "http"
    assert await _get(plain.url + "/healthz") == 200
    route = await _route(plain.running.address, channel_credentials(grpc_ca.ca_file))
    assert route.decision.tier == "small"  # gRPC kept its TLS

    own = await start(_tls(http_ca.issue("server", server=True)))
    https = own.url.replace("http://", "https://")
    assert await _get(https + "/healthz", _client_context(http_ca)) == 200
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get(https + "/healthz", _client_context(grpc_ca))


def test_an_unreadable_or_mismatched_certificate_stops_the_start_naming_the_key(
    make_config: Callable[..., RouterConfig], tmp_path: Path
) -> None:
    ca = TestCA(tmp_path, "good")
    server, other = ca.issue("server", server=True), ca.issue("other", server=True)
    missing = {"cert_file": tmp_path / "none.pem", "key_file": server.key_file}
    config = with_server(make_config(), http={"address": "127.0.0.1:0", "tls": missing})
    with pytest.raises(ConfigError, match=r"server\.http\.tls\.cert_file: cannot read"):
        create_server(config, scorer=KeyedScorer())
    mismatched = {"cert_file": server.cert_file, "key_file": other.key_file}
    config = with_server(make_config(), http={"address": "127.0.0.1:0", "tls": mismatched})
    with pytest.raises(ConfigError, match=r"server\.http\.tls: cert_file and key_file do not load as a pair"):
        create_server(config, scorer=KeyedScorer())
    with pytest.raises(ConfigError, match=r"server\.http\.tls"):
        with_server(make_config(), http={"address": "127.0.0.1:0", "tls": "maybe"})
