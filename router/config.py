"""The one settings object: YAML -> validated pydantic model, with the sources' precedence stated here.

Precedence, highest first:
1. `rightsize serve` flags (`--address`, `--metrics-port`), applied with `with_server()`;
2. the YAML file given with `--config`, else the shipped `router/default_config.yaml`;
3. the defaults declared below.
A tier's secret comes from its `api_key`, else from the environment variable named by `api_key_env`.
`load_config()` is the only place that reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from router.domain import Tier
from router.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG_PATH = PACKAGE_DIR / "default_config.yaml"
DEFAULT_MODELS_DIR = PACKAGE_DIR.parent / "models"
# Keys the router sets itself on every LiteLLM call; a tier may not pass them through.
RESERVED_TIER_KEYS = frozenset({"messages", "stream", "stream_options"})
LOCAL_PROVIDERS = ("ollama/", "ollama_chat/", "hosted_vllm/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    """`server:` where to listen and how long to drain on shutdown."""

    address: str = "127.0.0.1:50051"
    # None: no /metrics endpoint; 0: any free port.
    metrics_port: int | None = Field(default=9464, ge=0, le=65535)
    metrics_address: str | None = None  # None: the host part of `address`
    grace_period_s: float = Field(default=10.0, ge=0)

    @field_validator("address")
    @classmethod
    def _has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]")


class TierSettings(BaseModel):
    """`tiers.small` / `tiers.large`: a LiteLLM model. Keys not declared here go to LiteLLM as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    timeout: float | None = Field(default=None, gt=0)  # seconds; the client's deadline may shorten it
    input_cost_per_token: float | None = Field(default=None, ge=0)  # USD
    output_cost_per_token: float | None = Field(default=None, ge=0)  # USD

    @model_validator(mode="after")
    def _no_reserved_keys(self) -> TierSettings:
        reserved = sorted(RESERVED_TIER_KEYS & set(self.model_extra or {}))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} cannot be set on a tier (the router sets it)")
        return self

    @property
    def is_local(self) -> bool:
        """A local model (Ollama, vLLM) costs nothing unless a price is configured."""
        return self.model.startswith(LOCAL_PROVIDERS)

    @property
    def has_price(self) -> bool:
        return self.input_cost_per_token is not None or self.output_cost_per_token is not None

    def litellm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `litellm.acompletion` (without messages, timeout and sampling)."""
        kwargs: dict[str, Any] = dict(self.model_extra or {})
        kwargs["model"] = self.model
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.get_secret_value()
        return kwargs


class Tiers(_Strict):
    """`tiers:` exactly the two tiers."""

    small: TierSettings
    large: TierSettings

    def get(self, tier: Tier) -> TierSettings:
        return self.small if tier == "small" else self.large


class Override(_Strict):
    """One `routing.overrides` rule: when every metadata pair matches, use its threshold or its tier."""

    metadata: dict[str, str] = Field(min_length=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
    tier: Tier | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Override:
        if (self.threshold is None) == (self.tier is None):
            raise ValueError("an override sets exactly one of `threshold` or `tier`")
        return self

    def matches(self, metadata: Mapping[str, str]) -> bool:
        return all(metadata.get(key) == value for key, value in self.metadata.items())


class RoutingSettings(_Strict):
    """`routing:` the policy's knobs. Large is chosen when score >= threshold."""

    threshold: float = Field(default=0.5, ge=0, le=1)
    fallback: bool = True  # retry a failed small-tier call once on the large tier
    overrides: tuple[Override, ...] = ()
    max_prompt_chars: int = Field(default=200_000, gt=0)  # all message contents together
    context_turns: int = Field(default=0, ge=0)  # earlier turns scored with the last user message
    context_chars: int = Field(default=1000, ge=0)


class ScoringSettings(_Strict):
    """`scoring:` the classifier's worker: onnxruntime threads and the largest coalesced batch."""

    # One intra-op thread: a thread pool's spin-waiting would steal the core that gRPC and LiteLLM need
    # (measured on 2 cores: Route p50 4.8 ms with 1 thread, 15 ms with 2).
    threads: int = Field(default=1, ge=1)
    max_batch: int = Field(default=32, ge=1)


class ModelsSettings(_Strict):
    """`models:` the classifier served is `dir/active` (dir relative to the config file's directory)."""

    dir: Path | None = None  # None: the models/ directory next to the package
    active: str = Field(default="default", min_length=1)

    @property
    def path(self) -> Path:
        """The model directory the scorer loads."""
        return (self.dir or DEFAULT_MODELS_DIR) / self.active


class RouterConfig(_Strict):
    """The whole configuration, built once by `load_config()` and passed down."""

    server: ServerSettings = ServerSettings()
    tiers: Tiers
    routing: RoutingSettings = RoutingSettings()
    scoring: ScoringSettings = ScoringSettings()
    models: ModelsSettings = ModelsSettings()


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> RouterConfig:
    """Read and validate a YAML config (the shipped default when `path` is None).

    Raises ConfigError with a one-line message naming the file and the offending key.
    """
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    raw = _read_yaml(path)
    environ = os.environ if environ is None else environ
    try:
        config = RouterConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_error(exc)}") from exc
    return _resolve(config, path.parent, environ)


def with_server(config: RouterConfig, **changes: Any) -> RouterConfig:
    """A copy with some `server` settings replaced (command-line flags; None values are ignored)."""
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        return config
    try:
        server = ServerSettings.model_validate({**config.server.model_dump(), **changes})
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, prefix="server")) from exc
    return config.model_copy(update={"server": server})


def _read_yaml(path: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML, YAMLError

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        raw = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(part) for part in ((prefix,) if prefix else ()) + tuple(first["loc"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{key or '(top level)'}: {first['msg']}{more}"


def _resolve(config: RouterConfig, base: Path, environ: Mapping[str, str]) -> RouterConfig:
    tiers = {}
    for name in ("small", "large"):
        tier: TierSettings = getattr(config.tiers, name)
        if tier.api_key is None and tier.api_key_env and environ.get(tier.api_key_env):
            tier = tier.model_copy(update={"api_key": SecretStr(environ[tier.api_key_env])})
        tiers[name] = tier
    models = config.models
    if models.dir is not None and not models.dir.is_absolute():
        models = models.model_copy(update={"dir": (base / models.dir).resolve()})
    return config.model_copy(update={"tiers": Tiers(**tiers), "models": models})
