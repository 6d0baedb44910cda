"""API-key authentication: salted key hashes, and the grpc.aio interceptor that checks `authorization`.

A key is `rsk_<salt>_<secret>`; the config holds only `scrypt$N$r$p$<salt>$<hash>` (base64url, no
padding). The salt in the key picks the one entry to verify, so a wrong key costs at most one KDF run.
A verified key is remembered (as an HMAC under a per-process secret), so the KDF runs once per key and
process, off the event loop.

Tenants: a key bound to a tenant refuses (PERMISSION_DENIED) a request whose metadata claims another
tenant (`metadata["tenant"]`), and a request that claims none gets the key's tenant written into its
metadata, so routing overrides and the request log see it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from router.config.guards import ApiKeyEntry, AuthSettings
from router.errors import PermissionDeniedError, UnauthenticatedError
from router.rpc.interceptors import PrefixGuardInterceptor, refuse

KEY_PREFIX = "rsk_"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~0.1 s and 16 MiB per derivation
_DKLEN = 32
_SALT_BYTES = 12
_SALT_CHARS = 16  # base64 of _SALT_BYTES, no padding
# The authenticated client of the current call (its key's id), for the rate limiter; "" when auth is off.
CLIENT_ID: contextvars.ContextVar[str] = contextvars.ContextVar("rightsize_client_id", default="")


@dataclass(frozen=True)
class IssuedKey:
    """A new client key (shown once), its config hash line, and its tenant."""

    key: str
    hash: str
    tenant: str | None


def create_key(tenant: str | None = None) -> IssuedKey:
    """A new random key (256 bits) and its scrypt hash."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = f"{KEY_PREFIX}{_b64(salt)}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key, hash_key(key, salt), tenant)


def hash_key(key: str, salt: bytes) -> str:
    """`scrypt$N$r$p$salt$hash` of `key` with the default cost."""
    derived = hashlib.scrypt(key.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_DKLEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(derived)}"


def verify_key(key: str, encoded: str) -> bool:
    """True when `key` matches the hash line `encoded` (scrypt or pbkdf2_sha256); constant-time compare."""
    try:
        salt, expected, derive = _parse(encoded)
    except ValueError:
        return False
    return hmac.compare_digest(derive(key.encode(), salt, len(expected)), expected)


def key_salt(encoded: str) -> str:
    """The salt field of a hash line (public: it is also part of the key)."""
    parts = encoded.split("$")
    return parts[4] if parts[0] == "scrypt" and len(parts) == 6 else parts[-2]


def _parse(encoded: str) -> tuple[bytes, bytes, Callable[[bytes, bytes, int], bytes]]:
    parts = encoded.split("$")
    if parts[0] == "scrypt" and len(parts) == 6:
        n, r, p = (int(part) for part in parts[1:4])
        return (
            _unb64(parts[4]),
            _unb64(parts[5]),
            lambda key, salt, size: hashlib.scrypt(
                key, salt=salt, n=n, r=r, p=p, dklen=size, maxmem=256 * 1024 * 1024
            ),
        )
    if parts[0] == "pbkdf2_sha256" and len(parts) == 4:
        rounds = int(parts[1])
        return (
            _unb64(parts[2]),
            _unb64(parts[3]),
            lambda key, salt, size: hashlib.pbkdf2_hmac("sha256", key, salt, rounds, size),
        )
    raise ValueError("unknown hash format")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KeyRing:
    """The accepted keys; `identify()` returns the matching entry's index, or None."""

    def __init__(self, entries: tuple[ApiKeyEntry, ...]):
        self.entries = entries
        self._by_salt = {key_salt(entry.hash): index for index, entry in enumerate(entries)}
        self._verified: dict[bytes, int] = {}
        self._pepper = secrets.token_bytes(32)

    async def identify(self, key: str) -> int | None:
        """The index of the entry `key` matches; the KDF runs in a thread, once per key and process."""
        fingerprint = hmac.new(self._pepper, key.encode(), hashlib.sha256).digest()
        index = self._verified.get(fingerprint)
        if index is not None:
            return index
        for candidate in self._candidates(key):
            if await asyncio.to_thread(verify_key, key, self.entries[candidate].hash):
                if len(self._verified) < 4096:
                    self._verified[fingerprint] = candidate
                return candidate
        return None

    def _candidates(self, key: str) -> list[int]:
        if key.startswith(KEY_PREFIX):
            salt = key[len(KEY_PREFIX) : len(KEY_PREFIX) + _SALT_CHARS]
            index = self._by_salt.get(salt)
            return [] if index is None else [index]
        return list(range(len(self.entries)))  # a key made elsewhere: try each (the list is short)


def bearer_key(metadata: Any) -> str | None:
    """The key of an `authorization: Bearer <key>` header in invocation metadata, else None."""
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str):
            scheme, _, key = value.strip().partition(" ")
            return key.strip() or None if scheme.lower() == "bearer" else None
    return None


class KeyCheck:
    """The API-key check both doors share (gRPC metadata, HTTP `Authorization`): `admit()` names the client.

    Raises UnauthenticatedError (no key, or one not configured) or PermissionDeniedError (a key bound to
    another tenant than the request claims); a request that claims none gets the key's tenant.
    """

    def __init__(self, settings: AuthSettings):
        self.settings = settings
        self.keys = KeyRing(settings.api_keys)

    async def admit(self, key: str | None, request: Any) -> str:
        """The client id (`key[<index>]`) of `key`, after checking and filling `request.metadata`'s tenant."""
        index = None if key is None else await self.keys.identify(key)
        if index is None:
            reason = "missing" if key is None else "not valid"
            raise UnauthenticatedError(f"API key {reason}: send 'authorization: Bearer <key>'")
        entry = self.keys.entries[index]
        self._claim_tenant(request, entry)
        if entry.tenant is not None and not self._tenant_allowed(request, entry.tenant):
            raise PermissionDeniedError(
                f"this API key may not act for the request's {self.settings.tenant_key!r}"
            )
        return f"key[{index}]"

    def _claim_tenant(self, request: Any, entry: ApiKeyEntry) -> None:
        """Write the key's tenant into a request that claims none (requests without metadata are skipped)."""
        metadata = getattr(request, "metadata", None)
        if entry.tenant is not None and metadata is not None and not metadata.get(self.settings.tenant_key):
            metadata[self.settings.tenant_key] = entry.tenant

    def _tenant_allowed(self, request: Any, tenant: str) -> bool:
        metadata = getattr(request, "metadata", None)
        return metadata is None or metadata.get(self.settings.tenant_key) == tenant


class AuthInterceptor(PrefixGuardInterceptor):
    """Refuses Router calls without a configured key (UNAUTHENTICATED) or for another tenant
    (PERMISSION_DENIED); other services (health, reflection) pass untouched."""

    def __init__(self, check: KeyCheck, guarded_prefix: str):
        self.check = check
        self.guarded_prefix = guarded_prefix

    @contextlib.asynccontextmanager
    async def _guard(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            client = await self.check.admit(bearer_key(context.invocation_metadata()), request)
        except UnauthenticatedError as exc:
            await refuse(context, grpc.StatusCode.UNAUTHENTICATED, f"{exc}")
        except PermissionDeniedError as exc:
            await refuse(context, grpc.StatusCode.PERMISSION_DENIED, f"{exc}")
        token = CLIENT_ID.set(client)
        try:
            yield context
        finally:
            with contextlib.suppress(ValueError):  # a stream closed from another context: nothing to undo
                CLIENT_ID.reset(token)
