"""Settings of the server's call guards: `server.auth` (API keys), `server.tls`, `server.limits`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

HASH_SCHEMES = ("scrypt", "pbkdf2_sha256")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKeyEntry(_Strict):
    """One accepted client key: its salted hash (never the key), and the tenant it is bound to (None: any)."""

    hash: str = Field(min_length=1)
    tenant: str | None = Field(default=None, min_length=1)

    @field_validator("hash")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("$", 1)[0]
        if scheme not in HASH_SCHEMES:
            schemes = " or ".join(HASH_SCHEMES)
            raise ValueError(
                f"expected a hash made by `rightsize keys create` ({schemes}$...), "
                f"got one starting {scheme[:12]!r}"
            )
        return value


class AuthSettings(_Strict):
    """`server.auth`: with any key configured, every Router call needs `authorization: Bearer <key>`.

    Keys come from `api_keys`, plus the same list as JSON/YAML in the environment variable named by
    `api_keys_env` (read by `router.config.settings.load_config`). Health and reflection stay open.
    """

    api_keys: tuple[ApiKeyEntry, ...] = ()
    api_keys_env: str | None = Field(default=None, min_length=1)
    # The request metadata key a tenant claim is read from (and set from the key when absent).
    tenant_key: str = Field(default="tenant", min_length=1)

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys)


class TlsSettings(_Strict):
    """`server.tls`: serve TLS with this certificate chain and key (PEM); with `client_ca_file`, mTLS."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # set: every client must present a certificate signed by this CA


class RateLimitSettings(_Strict):
    """`server.limits.rate_limit`: a token bucket per API key (one shared bucket when auth is off)."""

    per_second: float = Field(gt=0)  # sustained calls per second
    burst: int = Field(default=10, ge=1)  # calls allowed at once from a full bucket


class LimitsSettings(_Strict):
    """`server.limits`: bounds on what one call, and all calls together, may take."""

    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # a received gRPC message
    max_messages: int = Field(default=1000, ge=1)  # chat messages in one request
    max_concurrent_calls: int | None = Field(default=256, ge=1)  # Router calls in flight; None: no bound
    rate_limit: RateLimitSettings | None = None
    # Applied when the client sends no deadline; None: such a call is bounded by the tiers' timeouts only.
    default_deadline_s: float | None = Field(default=300.0, gt=0)


_KEY_LIST = TypeAdapter(tuple[ApiKeyEntry, ...])


def keys_from_env(auth: AuthSettings, environ: Mapping[str, str]) -> AuthSettings:
    """`auth` with the keys of `auth.api_keys_env` appended; ValueError naming the variable when invalid."""
    if not auth.api_keys_env or not environ.get(auth.api_keys_env):
        return auth
    text = environ[auth.api_keys_env]
    try:
        entries = _KEY_LIST.validate_python(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        # The message never quotes the variable's value: it holds key hashes.
        reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else _first_error(exc)
        raise ValueError(f"${auth.api_keys_env}: expected a JSON list of {{hash, tenant}}: {reason}") from exc
    return auth.model_copy(update={"api_keys": (*auth.api_keys, *entries)})


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
