"""API keys: hashing, the env list, and the interceptor on a real server (health and reflection open)."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from router._proto import router_pb2 as pb
from router.cli import main
from router.config import RouterConfig
from router.config.guards import ApiKeyEntry, AuthSettings, keys_from_env
from router.rpc.auth import KeyRing, bearer_key, create_key, verify_key
from tests.router.conftest import StartServer
from tests.router.guards.helpers import status_of, with_server
from tests.router.support import KeyedScorer, user
from tests.router.waiting import SERVING, health

ACME = create_key("acme")
ANY_TENANT = create_key(None)


def test_a_key_verifies_against_its_hash_only() -> None:
    assert verify_key(ACME.key, ACME.hash)
    assert not verify_key(ANY_TENANT.key, ACME.hash)
    assert not verify_key(ACME.key[:-1], ACME.hash)
    assert not verify_key(ACME.key, "scrypt$broken")
    assert ACME.key not in ACME.hash and ACME.hash.startswith("scrypt$16384$8$1$")


def test_pbkdf2_hashes_are_accepted_too() -> None:
    import base64
    import hashlib

    salt = b"0123456789ab"
    derived = hashlib.pbkdf2_hmac("sha256", b"my-key", salt, 1000, 32)
    line = "pbkdf2_sha256$1000${}${}".format(
        *(base64.urlsafe_b64encode(raw).rstrip(b"=").decode() for raw in (salt, derived))
    )
    assert verify_key("my-key", line) and not verify_key("my-kez", line)


async def test_the_keyring_picks_the_entry_by_salt_and_remembers_verified_keys() -> None:
    ring = KeyRing((ApiKeyEntry(hash=ACME.hash, tenant="acme"), ApiKeyEntry(hash=ANY_TENANT.hash)))
    assert await ring.identify(ANY_TENANT.key) == 1
    assert await ring.identify(ACME.key) == 0
    assert await ring.identify(ACME.key) == 0  # from the cache
    assert await ring.identify("rsk_" + "x" * 40) is None
    assert await ring.identify("no-prefix") is None


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer  abc "),), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer "),), None),
        ((), None),
    ],
)
def test_bearer_key_parsing(metadata: tuple[tuple[str, str], ...], key: str | None) -> None:
    assert bearer_key(metadata) == key


def test_keys_come_from_the_environment_as_json() -> None:
    auth = AuthSettings(api_keys_env="KEYS")
    entries = json.dumps([{"hash": ACME.hash, "tenant": "acme"}])
    assert keys_from_env(auth, {"KEYS": entries}).api_keys == (ApiKeyEntry(hash=ACME.hash, tenant="acme"),)
    assert keys_from_env(auth, {}).api_keys == ()
    with pytest.raises(ValueError, match=r"\$KEYS: .*not JSON") as caught:
        keys_from_env(auth, {"KEYS": "scrypt$secret-looking"})
    assert "secret-looking" not in str(caught.value)
    with pytest.raises(ValueError, match="hash"):
        keys_from_env(auth, {"KEYS": json.dumps([{"hash": "md5$x"}])})


def test_keys_create_prints_a_key_its_hash_and_the_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--tenant", "acme", "--json"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert set(issued) == {"key", "hash", "tenant"} and issued["tenant"] == "acme"
    assert verify_key(issued["key"], issued["hash"])
    assert main(["keys", "create"]) == 0
    text = capsys.readouterr().out
    assert "key:  rsk_" in text and '{"hash": "scrypt$' in text


def _bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def test_router_calls_need_a_valid_key_and_the_right_tenant(
    start_server: StartServer, make_config: Callable[..., RouterConfig]
) -> None:
    config = make_config(overrides=[{"metadata": {"tenant": "acme"}, "tier": "large"}])
    auth = AuthSettings(
        api_keys=(ApiKeyEntry(hash=ACME.hash, tenant="acme"), ApiKeyEntry(hash=ANY_TENANT.hash))
    )
    server = await start_server(
        with_server(config, auth=auth), with_scorer=KeyedScorer(), wait_completion=False
    )
    request = pb.RouteRequest(messages=user("hi"))

    missing = await status_of(server.stub.Route(request))
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED and "missing" in (missing.details() or "")
    wrong = await status_of(server.stub.Route(request, metadata=_bearer(ACME.key[:-2] + "zz")))
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED and ACME.key[:-2] not in (wrong.details() or "")
    assert (
        await status_of(server.stub.Route(request, metadata=(("authorization", ACME.key),)))
    ).code() == grpc.StatusCode.UNAUTHENTICATED

    # No tenant in the request: the key's tenant is filled in, so the tenant override applies.
    decided = await server.stub.Route(request, metadata=_bearer(ACME.key))
    assert decided.decision.tier == "large" and "tenant=acme" in decided.decision.reason
    other = pb.RouteRequest(messages=user("hi"), metadata={"tenant": "globex"})
    denied = await status_of(server.stub.Route(other, metadata=_bearer(ACME.key)))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    # An unbound key may act for any tenant; a bound key for its own.
    assert (await server.stub.Route(other, metadata=_bearer(ANY_TENANT.key))).decision.tier == "small"
    own = pb.RouteRequest(messages=user("hi"), metadata={"tenant": "acme"})
    assert (await server.stub.Route(own, metadata=_bearer(ACME.key))).decision.tier == "large"
    stream = server.stub.CompleteStream(pb.CompleteRequest(messages=user("hi")))
    assert (await status_of(stream.read())).code() == grpc.StatusCode.UNAUTHENTICATED

    # Health and reflection stay open.
    assert await health(server.channel, "") == SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    ask = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = reflection.ServerReflectionInfo(iter([ask]))
    services = [s.name async for r in responses for s in r.list_services_response.service]
    assert "rightsize.v1.Router" in services


async def test_auth_off_leaves_calls_open(
    start_server: StartServer, make_config: Callable[..., RouterConfig]
) -> None:
    server = await start_server(make_config(), with_scorer=KeyedScorer(), wait_completion=False)
    assert (await server.stub.Route(pb.RouteRequest(messages=user("hi")))).decision.tier == "small"
