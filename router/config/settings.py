"""The one settings object: YAML -> validated pydantic model, with the sources' precedence stated here.

Precedence, highest first:
1. `rightsize serve` flags (`--address`, `--metrics-port`), applied with `with_server()`;
2. the YAML file given with `--config`, else the shipped `router/default_config.yaml`;
3. the defaults declared below.
A tier's secret comes from its `api_key`, else from the environment variable named by `api_key_env`.
Client API key hashes come from `server.auth.api_keys` plus the JSON list in `server.auth.api_keys_env`.
The replica id is `server.replica_id`, else $RIGHTSIZE_REPLICA_ID, else `<hostname>:<bound port>`.
`load_config()` is the only place that reads the environment.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from router.config.cascade import CascadeSettings, Mode
from router.config.embedded import (
    CATALOG,
    EmbeddedOptions,
    embedded_alias,
    gguf_path,
    missing_requirement,
)
from router.config.guards import AuthSettings, LimitsSettings, TlsSettings, keys_from_env
from router.domain import Tier
from router.errors import ConfigError
from router.fewshot.settings import FewShotSettings
from router.requestlog.settings import LogSettings

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # router/
DEFAULT_CONFIG_PATH = PACKAGE_DIR / "default_config.yaml"
DEFAULT_MODELS_DIR = PACKAGE_DIR.parent / "models"
# Keys the router sets itself on every LiteLLM call; a tier may not pass them through.
RESERVED_TIER_KEYS = frozenset({"messages", "stream", "stream_options"})
LOCAL_PROVIDERS = ("ollama/", "ollama_chat/", "hosted_vllm/")
REPLICA_ID_ENV = "RIGHTSIZE_REPLICA_ID"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]


class _Listener(_Strict):
    address: HostPort

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]")


class HttpSettings(_Listener):
    """`server.http`: the OpenAI-compatible HTTP door (router.rpc.http), beside gRPC in the same process.

    It shares the gRPC server's keys, limits (a body over `limits.max_message_bytes` is 413), pipeline and
    request log, and by default its TLS (`server.tls`, mTLS included). `tls: off` serves plain HTTP
    (TLS terminated in front of it); a `tls:` section of its own serves another certificate.
    """

    address: HostPort = "127.0.0.1:8080"  # port 0: any
    tls: TlsSettings | Literal["off", False] | None = None  # None: as server.tls


class ServerSettings(_Listener):
    """`server:` where to listen and how long to drain on shutdown."""

    address: HostPort = "127.0.0.1:50051"
    # None: no /metrics endpoint; 0: any free port.
    metrics_port: int | None = Field(default=9464, ge=0, le=65535)
    metrics_address: str | None = None  # None: the host part of `address`
    grace_period_s: float = Field(default=10.0, ge=0)
    auth: AuthSettings = AuthSettings()  # API keys (router.rpc.auth); none configured: no authentication
    tls: TlsSettings | None = None  # None: plaintext
    limits: LimitsSettings = LimitsSettings()  # bounds per call and in total (router.rpc.limits)
    # Written on every request-log record; None: $RIGHTSIZE_REPLICA_ID, else `<hostname>:<bound port>`.
    replica_id: str | None = Field(default=None, min_length=1, max_length=200)
    http: HttpSettings | None = None  # None: no OpenAI-compatible HTTP door

    def http_tls(self) -> tuple[TlsSettings, str] | None:
        """The HTTP door's TLS and the config key it comes from; None: plain HTTP (or no door)."""
        if self.http is None or self.http.tls in ("off", False):
            return None
        if isinstance(self.http.tls, TlsSettings):
            return self.http.tls, "server.http.tls"
        return (self.tls, "server.tls") if self.tls is not None else None

    def replica_name(self, bound_port: int) -> str:
        """The replica id logged with each request: `replica_id`, else `<hostname>:<bound_port>`."""
        import socket

        return self.replica_id or f"{socket.gethostname()}:{bound_port}"


class TierSettings(BaseModel):
    """`tiers.small` / `tiers.large`: a LiteLLM model. Keys not declared here go to LiteLLM as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1)
    # A catalog name (smollm2-135m) or a .gguf path: the router runs the model in a llama.cpp child process
    # and `model` becomes hosted_vllm/<alias> (see router.backends.llama_child).
    embedded: str | None = Field(default=None, min_length=1)
    embedded_options: EmbeddedOptions = EmbeddedOptions()
    # The tier used instead when `embedded` cannot run here (the [local] extra is not installed).
    if_not_installed: TierSettings | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    timeout: float | None = Field(default=None, gt=0)  # seconds; the client's deadline may shorten it
    idle_timeout: float | None = Field(default=None, gt=0)  # seconds a stream may go without a chunk
    input_cost_per_token: float | None = Field(default=None, ge=0)  # USD
    output_cost_per_token: float | None = Field(default=None, ge=0)  # USD
    # Small tier only: worked examples injected per request (router.fewshot); never sent to LiteLLM.
    few_shot: FewShotSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _embedded_model(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if not data.get("embedded"):
            if data.get("if_not_installed") is not None:
                raise ValueError("`if_not_installed` applies only to a tier with `embedded`")
            return data
        clashes = sorted({"model", "api_base"} & set(data))
        if clashes:
            raise ValueError(f"set `embedded` or `{clashes[0]}`, not both (the router serves `embedded`)")
        return {**data, "model": f"hosted_vllm/{embedded_alias(str(data['embedded']))}"}

    @model_validator(mode="after")
    def _no_reserved_keys(self) -> TierSettings:
        reserved = sorted(RESERVED_TIER_KEYS & set(self.model_extra or {}))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} cannot be set on a tier (the router sets it)")
        return self

    @property
    def is_self_hosted(self) -> bool:
        """A local model (Ollama, vLLM) costs nothing unless a price is configured."""
        return self.model.startswith(LOCAL_PROVIDERS)

    @property
    def missing_key_env(self) -> str | None:
        """The environment variable to set when the tier names one (`api_key_env`) but has no key."""
        return self.api_key_env if self.api_key is None and self.api_key_env else None

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

    @model_validator(mode="after")
    def _few_shot_small_only(self) -> Tiers:
        fallback = self.large.if_not_installed
        if self.large.few_shot is not None or (fallback is not None and fallback.few_shot is not None):
            raise ValueError("few_shot applies only to tiers.small (exemplars teach the small model)")
        return self

    def get(self, tier: Tier) -> TierSettings:
        return self.small if tier == "small" else self.large


class Override(_Strict):
    """One `routing.overrides` rule: when every condition matches, use its threshold or its tier.

    Conditions: `metadata` pairs, `tools` (true: the request offers tools; false: it offers none) and
    `response_format` (the request's type: "text", "json_object" or "json_schema"). At least one is set.
    """

    metadata: dict[str, str] = Field(default_factory=dict)
    tools: bool | None = None
    response_format: Literal["text", "json_object", "json_schema"] | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    tier: Tier | None = None
    mode: Mode | None = None  # None: `routing.mode`

    @model_validator(mode="after")
    def _one_action(self) -> Override:
        if self.threshold is not None and self.tier is not None:
            raise ValueError("an override sets one of `threshold` or `tier`, not both")
        if self.threshold is None and self.tier is None and self.mode is None:
            raise ValueError("an override sets `threshold`, `tier` or `mode`")
        if self.tier is not None and self.mode == "cascade":
            raise ValueError("`mode: cascade` cannot go with `tier` (a fixed tier has nothing to verify)")
        if not self.metadata and self.tools is None and self.response_format is None:
            raise ValueError("an override needs a condition: `metadata`, `tools` or `response_format`")
        return self

    def matches(
        self, metadata: Mapping[str, str], *, tools: bool = False, response_format: str = "text"
    ) -> bool:
        """True when the request's metadata, tool use and response_format type all fit this rule."""
        if self.tools is not None and self.tools != tools:
            return False
        if self.response_format is not None and self.response_format != (response_format or "text"):
            return False
        return all(metadata.get(key) == value for key, value in self.metadata.items())

    def describe(self) -> str:
        """The rule's conditions for a decision's reason, e.g. "task=extract tools=true"."""
        parts = [f"{key}={value}" for key, value in self.metadata.items()]
        if self.tools is not None:
            parts.append(f"tools={str(self.tools).lower()}")
        if self.response_format is not None:
            parts.append(f"response_format={self.response_format}")
        return " ".join(parts)

    def mode_for(self, default: Mode) -> Mode:
        """The routing mode of a request this rule matches: its own `mode`, else `default`; a fixed tier
        is always `route`."""
        if self.tier is not None:
            return "route"
        return self.mode or default


class TargetWindow(_Strict):
    """`routing.target_window`: the logged requests a `target_large_fraction` is resolved on."""

    hours: float = Field(default=24.0, gt=0)  # requests logged in the last `hours`
    max_requests: int = Field(default=10_000, ge=1)  # at most this many, the most recent
    # Fewer scored requests than this: the model manifest's suggested thresholds are used instead.
    min_requests: int = Field(default=100, ge=1)


class BreakerSettings(_Strict):
    """`routing.breaker`: when to stop calling a failing tier, and for how long (read at start-up)."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1)  # consecutive failed calls that open the circuit
    open_s: float = Field(default=30.0, gt=0)  # seconds open before a half-open probe


class RoutingSettings(_Strict):
    """`routing:` the policy's knobs. Large is chosen when score >= threshold."""

    threshold: float = Field(default=0.5, ge=0, le=1)
    # When set, replaces `threshold`: the threshold that sent this share of recent logged traffic to large
    # (see router.routing.target_share), recomputed every `recalibrate_every_s` seconds in the background.
    target_large_fraction: float | None = Field(default=None, ge=0, le=1)
    target_window: TargetWindow = TargetWindow()
    recalibrate_every_s: float = Field(default=300.0, ge=1)
    fallback: bool = True  # retry a failed small-tier call once on the large tier
    # Start a Complete's small-tier call while the prompt is scored, and cancel it when the decision says
    # large: a small-routed Complete then waits for the model only, not for the decision first. Meant for a
    # small tier that serves calls concurrently (Ollama, vLLM); unary Complete only, not with few-shot.
    speculative_small: bool = False
    breaker: BreakerSettings = BreakerSettings()  # per-tier circuit breaker (router.backends.breaker)
    overrides: tuple[Override, ...] = ()
    max_prompt_chars: int = Field(default=200_000, gt=0)  # all message contents together
    context_turns: int = Field(default=0, ge=0)  # earlier turns scored with the last user message
    context_chars: int = Field(default=1000, ge=0)
    # route: the tier is chosen before generation; cascade: the small tier answers first and its answer is
    # verified (routing.cascade). Overrides may set their own `mode`.
    mode: Mode = "route"
    cascade: CascadeSettings = CascadeSettings()
    # small: a last user message that only greets, thanks or says goodbye (classifier.social) goes to the
    # small tier whatever its score, which is extrapolation there; score: such turns are scored like any.
    social_turns: Literal["small", "score"] = "small"
    # task: a last user message that only asks to go on ("continue", "yes, do it"; classifier.social) is
    # scored as the user turn it continues, so it goes where that task went; score: scored as itself.
    continuations: Literal["task", "score"] = "task"

    @model_validator(mode="after")
    def _cascade_makes_sense(self) -> RoutingSettings:
        direct_large = self.cascade.direct_large
        if self.mode == "cascade" and direct_large < self.threshold:
            raise ValueError(
                f"routing.cascade.direct_large ({direct_large:g}) is below routing.threshold "
                f"({self.threshold:g}): the cascade would send more prompts straight to large than routing"
            )
        for index, override in enumerate(self.overrides):
            if override.mode_for(self.mode) != "cascade" or override.threshold is None:
                continue
            if direct_large < override.threshold:
                raise ValueError(
                    f"routing.cascade.direct_large ({direct_large:g}) is below routing.overrides[{index}]"
                    f".threshold ({override.threshold:g}), which runs in cascade mode"
                )
        return self

    def uses_cascade(self) -> bool:
        """True when the global mode or any override runs the cascade."""
        return self.mode == "cascade" or any(o.mode_for(self.mode) == "cascade" for o in self.overrides)


class ScoringSettings(_Strict):
    """`scoring:` the classifier's worker: onnxruntime threads and the largest coalesced batch."""

    # onnxruntime intra-op threads; null (default): min(2, cores). `auto` times 1, 2 and half the CPUs at
    # start-up (classifier.autotune) and keeps the fastest. It is not the default: the timing overlaps
    # LiteLLM's import on the other core, so on a 2-core machine it picked one thread (Route x32 281-388/s)
    # where two serve 424-444/s once start-up is over (bench_service.py, quiet AMD EPYC). A number fixes it.
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] | None = None
    max_batch: int = Field(default=32, ge=1)
    # The embedder file. `auto` (default): of the files the embedder ships (fp32, int8, int8_full), those
    # whose embeddings meet the parity bars against fp32 on this CPU (mean cosine >= 0.997, worst >= 0.99, on
    # built-in probe texts) are timed at start-up and the fastest serves, with the trained one preferred
    # within 5 %: int8 wins where the CPU has VNNI, fp32 may where it has not (README, "The embedder").
    # `trained` serves the one the classifier was trained on (its manifest; the shipped classifier: int8 with
    # 7-bit weights, whose embeddings are the same with or without VNNI: README, "The embedder");
    # `fp32`, `int8` or `int8_full` (int8 with the feed-forward outputs weight-only int8 too) serve that
    # file with the same head.
    embedder: Literal["auto", "trained", "fp32", "int8", "int8_full"] = "auto"


class ModelsSettings(_Strict):
    """`models:` the classifier served is `dir/active` (dir relative to the config file's directory).

    Once `rightsize retrain --promote` has written the pointer `dir/current`, the server serves what it
    points at instead, and notices a change within `poll_interval_s` (see router.model_registry).
    """

    dir: Path | None = None  # None: the models/ directory next to the package
    active: str = Field(default="default", min_length=1)
    keep: int = Field(default=5, ge=1)  # promoted versions kept for `rightsize models rollback`
    poll_interval_s: float = Field(default=1.0, gt=0)  # how often the server checks `dir/current`

    @property
    def root(self) -> Path:
        """The models directory."""
        return self.dir or DEFAULT_MODELS_DIR

    @property
    def path(self) -> Path:
        """The model directory the scorer loads."""
        return (self.dir or DEFAULT_MODELS_DIR) / self.active


class LearningSettings(_Strict):
    """`learning:` shadow sampling and the teacher that labels logged requests (`rightsize label`)."""

    # Share in [0, 1] of small-tier Complete answers also sent to the large tier, after the client has its
    # answer, so `rightsize label` can compare both answers.
    shadow_rate: float = Field(default=0.0, ge=0, le=1)
    shadow_max_inflight: int = Field(default=4, ge=1)  # shadow calls at once; a sample beyond is skipped
    judge: TierSettings | None = None  # the judge's model; None: the large tier


class RouterConfig(_Strict):
    """The whole configuration, built once by `load_config()` and passed down."""

    server: ServerSettings = ServerSettings()
    tiers: Tiers
    routing: RoutingSettings = RoutingSettings()
    scoring: ScoringSettings = ScoringSettings()
    models: ModelsSettings = ModelsSettings()
    log: LogSettings = LogSettings()
    learning: LearningSettings = LearningSettings()

    @property
    def verifier_dir(self) -> Path:
        """The answer-quality head's directory: `routing.cascade.head.path`, else `<models.dir>/verifier`."""
        return self.routing.cascade.head.path or self.models.root / "verifier"


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
    config = _resolve(config, path.parent, environ)
    # Relative log paths follow the config file; the shipped default config's follow the working directory,
    # however it is named (implicitly, or as --config router/default_config.yaml from any directory).
    log_base = Path.cwd() if _is_default(path) else path.parent
    return config.model_copy(update={"log": resolve_log_paths(config.log, log_base)})


def _is_default(path: Path) -> bool:
    try:
        return path.resolve() == DEFAULT_CONFIG_PATH.resolve()
    except OSError:
        return False


def resolve_log_paths(log: LogSettings, base: Path) -> LogSettings:
    """`log` with a relative SQLite path and spill_dir made absolute against `base`."""
    from router.requestlog.urls import parse_url

    changes: dict[str, Any] = {}
    url = parse_url(log.url)
    if url.engine == "sqlite" and not url.path.is_absolute():
        changes["url"] = f"sqlite:///{(base / url.path).resolve()}"
    if not log.spill_dir.is_absolute():
        changes["spill_dir"] = (base / log.spill_dir).resolve()
    return log.model_copy(update=changes) if changes else log


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
    """One line for the most telling error: an unknown key first, since a typo also makes a key missing."""
    errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
    first = errors[0]
    key = ".".join(_key_part(part) for part in ((prefix,) if prefix else ()) + tuple(first["loc"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(first["loc"], prefix)
    return f"{key or '(top level)'}: {message}{more}"


def _key_part(part: Any) -> str:
    """A key of the path as it reads in the message: quoted when it would not print as one plain word
    (a key holding a newline, a dot or nothing must not break the one-line error)."""
    text = str(part)
    return text if text.isprintable() and text and "." not in text and " " not in text else repr(text)


def _suggestion(loc: tuple[Any, ...], prefix: str) -> str:
    """`; did you mean `tiers`?` for a key close to one the section declares (empty when none is)."""
    import difflib

    model: type[BaseModel] | None = ServerSettings if prefix == "server" else RouterConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        candidates = (field.annotation, *typing.get_args(field.annotation)) if field is not None else ()
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def _resolve(config: RouterConfig, base: Path, environ: Mapping[str, str]) -> RouterConfig:
    tiers = {}
    for name in ("small", "large"):
        declared: TierSettings = getattr(config.tiers, name)
        tier: TierSettings = _resolve_embedded(declared, f"tiers.{name}", base)
        few_shot = declared.few_shot or tier.few_shot  # kept when `if_not_installed` stands in
        if few_shot is not None:
            tier = tier.model_copy(update={"few_shot": few_shot.resolved(base)})
        if tier.api_key is None and tier.api_key_env and environ.get(tier.api_key_env):
            tier = tier.model_copy(update={"api_key": SecretStr(environ[tier.api_key_env])})
        tiers[name] = tier
    models = config.models
    if models.dir is not None and not models.dir.is_absolute():
        models = models.model_copy(update={"dir": (base / models.dir).resolve()})
    routing = config.routing
    head = routing.cascade.head
    if head.path is not None and not head.path.is_absolute():
        head = head.model_copy(update={"path": (base / head.path).resolve()})
        cascade = routing.cascade.model_copy(update={"head": head})
        routing = routing.model_copy(update={"cascade": cascade})
    try:
        auth = keys_from_env(config.server.auth, environ)
    except ValueError as exc:
        raise ConfigError(f"server.auth.api_keys_env: {exc}") from exc
    server = config.server.model_copy(update={"auth": auth})
    if server.replica_id is None and environ.get(REPLICA_ID_ENV):
        server = server.model_copy(update={"replica_id": environ[REPLICA_ID_ENV]})
    return config.model_copy(
        update={"tiers": Tiers(**tiers), "models": models, "server": server, "routing": routing}
    )


def _resolve_embedded(tier: TierSettings, key: str, base: Path) -> TierSettings:
    """An embedded tier with an absolute .gguf path, or its `if_not_installed` tier when it cannot run."""
    if tier.embedded is None:
        return tier
    missing = missing_requirement(tier.embedded)
    if missing is not None:
        if tier.if_not_installed is None:
            raise ConfigError(f"{key}.embedded: {missing}")
        return _resolve_embedded(tier.if_not_installed, f"{key}.if_not_installed", base)
    embedded = tier.embedded
    if embedded not in CATALOG:
        if not embedded.endswith(".gguf"):
            raise ConfigError(
                f"{key}.embedded: expected {' or '.join(CATALOG)} or a path to a .gguf file, got {embedded!r}"
            )
        path = Path(embedded).expanduser()
        embedded = str(path if path.is_absolute() else (base / path).resolve())
    try:
        gguf_path(embedded)
    except FileNotFoundError as exc:
        raise ConfigError(f"{key}.embedded: {exc}") from exc
    return tier.model_copy(update={"embedded": embedded}) if embedded != tier.embedded else tier
