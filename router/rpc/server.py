"""The gRPC server: Router + health + reflection + /metrics, start-up, and graceful drain on SIGTERM/SIGINT.

Health is reported per service:
- "" and "rightsize.v1.Router": SERVING from start, since the classifier is loaded before the port opens
  (Route is ready; a Complete that arrives while LiteLLM still loads waits for it within its deadline);
- "rightsize.v1.Router/Complete": SERVING once LiteLLM is imported and every embedded tier's llama.cpp
  child answers; NOT_SERVING before that, if the import failed, or while a child is down (it is restarted
  with backoff; see router.backends.llama_child). `serve()` opens the port only once the import has
  finished (see `RouterServer.start(backend_first=True)`), so from the first SERVING on nothing imports
  in the background while Route answers;
- "rightsize.v1.Router/Complete/small" and ".../large": the same for one tier; a tier whose API key is
  missing is NOT_SERVING (its prompts are answered by the other tier, flagged as a fallback).
All turn NOT_SERVING when the drain starts. With `server.http`, the OpenAI-compatible door (router.rpc.http)
serves the same pipeline on the same loop; its /readyz reports these same statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.backends.breaker import State
from router.backends.embedded import EmbeddedTiers, tier_status_lines
from router.backends.litellm import LiteLLMBackend
from router.backends.stack import TierStack, build_tier_stack
from router.config import RouterConfig
from router.config.reload import ConfigReloader, ConfigSource
from router.domain import TIERS, Tier
from router.errors import RouterError
from router.fewshot.runtime import FewShot, FewShotMetrics, embedder_of
from router.memory import freeze_startup_objects, release_free_memory
from router.metrics import RouterMetrics
from router.model_registry import ModelRegistry, ModelWatcher
from router.pipeline import Pipeline
from router.recording import RequestRecorder
from router.redact import install_secret_filter
from router.routing.state import LiveState
from router.routing.target_share import TargetShare
from router.routing.verifying import AnswerVerifier
from router.rpc.auth import AuthInterceptor, KeyCheck
from router.rpc.http import DoorParts, HttpDoor, bind
from router.rpc.limits import CallLimits, LimitsInterceptor, grpc_options
from router.rpc.service import RouterService
from router.scoring_queue import ScoringQueue, TextScorer

if TYPE_CHECKING:
    from classifier.answer import AnswerScorer
    from classifier.scoring import Scorer

log = logging.getLogger(__name__)

ROUTER_SERVICE = pb.DESCRIPTOR.services_by_name["Router"].full_name
COMPLETION_HEALTH_SERVICE = f"{ROUTER_SERVICE}/Complete"
TIER_HEALTH_SERVICES = {tier: f"{COMPLETION_HEALTH_SERVICE}/{tier}" for tier in TIERS}
# NOT_SERVING while the tier's circuit breaker is open (router.backends.breaker).
BREAKER_HEALTH_SERVICES = {tier: f"{ROUTER_SERVICE}/breaker/{tier}" for tier in TIERS}
# NOT_SERVING while the small tier's last cascaded answer came without token log-probabilities (the
# confidence verifier is then skipped); SERVING otherwise, from the start.
LOGPROBS_HEALTH_SERVICE = f"{ROUTER_SERVICE}/cascade/logprobs"


@dataclass(frozen=True)
class ServerParts:
    """Everything a RouterServer runs, each built by `create_server()` before the server exists."""

    config: RouterConfig
    grpc_server: grpc.aio.Server
    health: health_aio.HealthServicer
    metrics: RouterMetrics
    live: LiveState  # the one owner of the live routing state
    stack: TierStack
    pipeline: Pipeline
    recorder: RequestRecorder
    target_share: TargetShare
    model_watcher: ModelWatcher
    reloader: ConfigReloader | None = None  # only when served from a config file
    http: HttpDoor | None = None  # only with server.http
    verifier_watcher: ModelWatcher | None = None  # the answer head's pointer (cascade mode)


class RouterServer:
    """A bound, not yet started server. Build it with `create_server()`."""

    def __init__(self, parts: ServerParts):
        self.config = parts.config
        self.grpc_server = parts.grpc_server
        self.health = parts.health
        self.metrics = parts.metrics
        self.live = parts.live
        self.stack = parts.stack
        self.pipeline = parts.pipeline
        self.request_log = parts.recorder
        self.target_share = parts.target_share
        self.model_watcher = parts.model_watcher
        self.verifier_watcher = parts.verifier_watcher
        self.reloader = parts.reloader
        self.http = parts.http
        self.metrics_port: int | None = None  # bound by start()
        self._health_updates: set[asyncio.Task[None]] = set()

    @property
    def backend(self) -> LiteLLMBackend:
        """The bottom of the tier stack (its import state is what Complete's health follows)."""
        return self.stack.litellm

    @property
    def embedded(self) -> EmbeddedTiers:
        """The embedded tiers' llama.cpp children."""
        return self.stack.embedded

    async def start(self, *, backend_first: bool = False) -> None:
        """Start serving: health SERVING for Route at once, for Complete once LiteLLM is loaded.

        With `backend_first`, the port opens only once LiteLLM's import has finished (`serve()` starts it
        before the classifier loads, so the two overlap): Complete is ready with the first SERVING, and no
        import holds the GIL while Route answers (issue 20: Route ran 2.6x slower during a background import).
        """
        server = self.config.server
        if server.metrics_port is not None:
            address = server.metrics_address or server.host
            try:
                self.metrics_port = self.metrics.serve_http(server.metrics_port, address)
            except OSError as exc:
                raise RouterError(f"cannot serve metrics on {address}:{server.metrics_port}: {exc}") from exc
        # First: loading a model takes a second or more, and overlaps the rest of the start.
        self.embedded.start(on_change=self._refresh_completion_health)
        await self.target_share.start()  # before the port opens: the first decision already uses it
        self.request_log.start()
        self.model_watcher.start()
        if self.verifier_watcher is not None and self.config.routing.uses_cascade():
            self.verifier_watcher.start()
        if self.reloader is not None:
            self.reloader.start()
        untimed = getattr(self.live.current.scorer, "tuning_pending", False)
        if self.pipeline.fewshot is not None and not untimed:
            self.pipeline.fewshot.start()  # builds the exemplar store in the background
        if backend_first:
            self.backend.start_loading()
            await asyncio.to_thread(self.backend.wait_loaded)
        if untimed:  # after the import: timed during it, every file ran slower and the choice was noise
            await asyncio.to_thread(self._finish_tuning)
            if self.pipeline.fewshot is not None:
                self.pipeline.fewshot.start()  # embeds the exemplars with the file chosen
        if backend_first:
            release_free_memory()  # as _backend_loaded() does, before the first call rather than during one
            freeze_startup_objects()
        await self.grpc_server.start()
        if self.http is not None:
            await self.http.start()
        for service in ("", ROUTER_SERVICE, *BREAKER_HEALTH_SERVICES.values(), LOGPROBS_HEALTH_SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        for service in (COMPLETION_HEALTH_SERVICE, *TIER_HEALTH_SERVICES.values()):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.metrics.ready.labels("classifier").set(1)
        for live, line in tier_status_lines(self.config, self.embedded):
            log.log(logging.INFO if live else logging.WARNING, "%s", line)
        self.backend.start_loading()
        # A daemon thread, not the loop's executor: shutting down must not wait for LiteLLM's import.
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._watch_backend, args=(loop,), name="litellm-watch", daemon=True).start()

    def _finish_tuning(self) -> None:
        """Time the classifier's embedder candidates, serve the fastest, and give the answer head (which
        may share the embedder) the file chosen."""
        state = self.live.current
        scorer = cast("Scorer", state.scorer)
        scorer.finish_tuning()
        log_embedder_choice(state.config, scorer)
        head = state.verifier
        # A head that never runs the embedder shared the provisional file: reloaded, it shares the chosen
        # one, and the provisional session is freed. One that runs it keeps the file it was trained on.
        if head is not None and not head.embeds and head.embedder is not scorer.embedder:
            try:
                self.live.install(verifier=load_verifier(head.model_dir, scorer))
            except Exception as exc:  # it loaded a moment ago; keep it as it is rather than fail the start
                log.warning("answer head kept on the provisional embedder file: %s", exc)

    def _watch_backend(self, loop: asyncio.AbstractEventLoop) -> None:
        ok = self.backend.wait_loaded()
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody is left to tell
            loop.call_soon_threadsafe(self._backend_loaded, ok)

    def _backend_loaded(self, ok: bool) -> None:
        release_free_memory()  # LiteLLM's import frees much of what it allocated (router.memory)
        freeze_startup_objects()  # LiteLLM's objects would make every full GC a ~100 ms stall
        self.metrics.ready.labels("completion").set(1 if ok else 0)
        self._refresh_completion_health()

    def _refresh_completion_health(self) -> None:
        """Set the Complete health services from LiteLLM's state and the embedded children's."""
        loaded = self.backend.ready
        wanted = {COMPLETION_HEALTH_SERVICE: loaded and self.embedded.all_up()}
        for tier, service in TIER_HEALTH_SERVICES.items():
            wanted[service] = (
                loaded
                and self.embedded.is_up(tier)
                and not self.live.current.config.tiers.get(tier).missing_key_env
            )
        loop = asyncio.get_running_loop()
        statuses = health_pb2.HealthCheckResponse
        for service, serving in wanted.items():
            status = statuses.SERVING if serving else statuses.NOT_SERVING
            task = loop.create_task(self.health.set(service, status))
            self._health_updates.add(task)
            task.add_done_callback(self._health_updates.discard)

    async def stop(self, grace_s: float | None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones run `grace_s` seconds more, close."""
        if self.reloader is not None:
            await self.reloader.stop()
        await self.target_share.stop()
        await self.health.enter_graceful_shutdown()
        await asyncio.gather(self.grpc_server.stop(grace_s), *([self.http.stop()] if self.http else []))
        await self.embedded.stop()  # after the drain: in-flight calls to an embedded tier have finished
        self.model_watcher.stop()
        if self.verifier_watcher is not None:
            self.verifier_watcher.stop()
        if self.pipeline.fewshot is not None:
            await self.pipeline.fewshot.stop()
        # Every answered call's record is queued by now; writing them all is what makes SIGTERM lossless.
        await self.request_log.aclose(self.config.log.timeout_ms / 1000 * 2)
        await self.backend.aclose()
        self.pipeline.scoring.close()
        self.metrics.close()


def create_server(
    config: RouterConfig,
    *,
    scorer: TextScorer | None = None,
    backend: LiteLLMBackend | None = None,
    metrics: RouterMetrics | None = None,
    source: ConfigSource | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[RouterServer, int]:
    """Build the server and bind `config.server.address`; returns it (not started) and the bound port.

    With `source` (the file `config` was loaded from), the server reloads it live (see router.config.reload).

    `scorer` defaults to the model directory `config.models.path`, loaded and verified here (slow: ~0.3 s);
    pass one to share it between servers. `clock` (monotonic seconds) drives the circuit breakers and the
    target-share schedule, so a test can advance it.
    Raises RouterError / ClassifierError when it cannot start.
    """
    scorer = scorer if scorer is not None else load_scorer(config)
    metrics = metrics if metrics is not None else RouterMetrics()
    verifier, verifier_error = load_verifier_at_start(config, scorer)
    live = LiveState(config, scorer, verifier, verifier_error)
    scoring = ScoringQueue(
        scorer,
        max_batch=config.scoring.max_batch,
        observe=lambda size, _seconds: metrics.batch_size.observe(size),
    )
    health = health_aio.HealthServicer()
    stack = build_tier_stack(
        config, metrics, litellm=backend, on_breaker_change=_breaker_health(health), clock=clock
    )
    fewshot = FewShot(  # reads the live state's config and classifier, so a reload or promotion applies
        lambda: live.current.config.tiers.small.few_shot,
        lambda: embedder_of(live.current.scorer),
        config.log,
        FewShotMetrics(metrics.registry),
        lambda: live.current.config.routing.cascade.approve_escalations,
    )
    verifier_checks = AnswerVerifier(metrics, on_logprobs=_logprobs_health(health))
    pipeline = Pipeline(live, scoring, stack.backend, metrics, fewshot, verifier_checks)
    key_check = KeyCheck(config.server.auth) if config.server.auth.enabled else None
    limits = CallLimits(config.server.limits, metrics.registry)  # one count and bucket for both doors
    http_context = _http_ssl_context(config)  # before anything binds: a bad certificate stops the start
    grpc_server, port = _bind(config, _interceptors(key_check, limits))
    # Bound first: the default replica id names the port (with `server.address` port 0 too).
    recorder = RequestRecorder(
        config, pipeline, stack.backend, metrics.registry, config.server.replica_name(port)
    )
    _add_services(grpc_server, RouterService(recorder.pipeline, metrics), health)
    http = None
    if config.server.http is not None:
        door = DoorParts(
            settings=config.server.http,
            pipeline=recorder.pipeline,
            config=lambda: live.current.config,
            metrics=metrics,
            key_check=key_check,
            limits=limits,
            probe=_health_probe(health),
            ready_service=COMPLETION_HEALTH_SERVICE,
            max_body_bytes=config.server.limits.max_message_bytes,
            grace_s=config.server.grace_period_s,
            secrets=tier_secrets(config),
        )
        http = HttpDoor(door, bind(config.server.http.address), http_context)
    target_share = TargetShare(live, metrics.registry, clock=clock)
    watcher = ModelWatcher(
        model_registry(config),
        lambda path: load_scorer(config, path),
        lambda promoted: live.install(scorer=promoted),
        interval_s=config.models.poll_interval_s,
    )
    verifier_watcher = ModelWatcher(  # `rightsize retrain` promotes answer heads into the head's registry
        verifier_registry(config),
        lambda path: load_verifier(path, live.current.scorer),
        lambda promoted: live.install(verifier=promoted, verifier_error=""),
        interval_s=config.models.poll_interval_s,
    )
    reloader = ConfigReloader(source, target_share, metrics.registry) if source is not None else None
    parts = ServerParts(
        config,
        grpc_server,
        health,
        metrics,
        live,
        stack,
        pipeline,
        recorder,
        target_share,
        watcher,
        reloader,
        http,
        verifier_watcher,
    )
    return RouterServer(parts), port


def _bind(
    config: RouterConfig, interceptors: list[grpc.aio.ServerInterceptor]
) -> tuple[grpc.aio.Server, int]:
    """The gRPC server bound to `server.address`, with no services yet: (server, bound port)."""
    # SO_REUSEPORT off: a second server on a busy port must fail, not silently share it.
    grpc_server = grpc.aio.server(
        interceptors=interceptors,
        options=[("grpc.so_reuseport", 0), *grpc_options(config.server.limits)],
    )
    try:
        if config.server.tls is None:
            port = grpc_server.add_insecure_port(config.server.address)
        else:
            from router.rpc.tls import server_credentials

            port = grpc_server.add_secure_port(config.server.address, server_credentials(config.server.tls))
    except RuntimeError as exc:
        raise RouterError(f"cannot listen on {config.server.address}: {exc}") from exc
    if port == 0:
        raise RouterError(f"cannot listen on {config.server.address} (address in use?)")
    return grpc_server, port


def _http_ssl_context(config: RouterConfig) -> ssl.SSLContext | None:
    """The HTTP door's TLS (`server.http.tls`, else `server.tls`), or None: plain HTTP, or no door."""
    tls = config.server.http_tls()
    if tls is None:
        return None
    from router.rpc.tls import server_ssl_context

    return server_ssl_context(*tls)


def _add_services(
    grpc_server: grpc.aio.Server, service: RouterService, health: health_aio.HealthServicer
) -> None:
    """The Router, health and reflection services on `grpc_server` (bound, not started)."""
    pb_grpc.add_RouterServicer_to_server(service, grpc_server)
    health_pb2_grpc.add_HealthServicer_to_server(health, grpc_server)
    reflection.enable_server_reflection(
        (ROUTER_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        grpc_server,
    )


def _breaker_health(health: health_aio.HealthServicer) -> Callable[[Tier, State], None]:
    """A breaker callback turning `<Router>/breaker/<tier>` NOT_SERVING while that circuit is open."""
    setter = _health_setter(health)
    return lambda tier, state: setter(BREAKER_HEALTH_SERVICES[tier], state != "open")


def _logprobs_health(health: health_aio.HealthServicer) -> Callable[[bool], None]:
    """The verifier's callback turning LOGPROBS_HEALTH_SERVICE NOT_SERVING while answers lack logprobs."""
    setter = _health_setter(health)
    return lambda present: setter(LOGPROBS_HEALTH_SERVICE, present)


def _health_setter(health: health_aio.HealthServicer) -> Callable[[str, bool], None]:
    """set(service, serving) from synchronous code on the loop: the update runs as a task."""
    updates: set[asyncio.Task[None]] = set()

    def set_status(service: str, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        task = asyncio.get_running_loop().create_task(health.set(service, status))
        updates.add(task)
        task.add_done_callback(updates.discard)

    return set_status


def _interceptors(key_check: KeyCheck | None, limits: CallLimits) -> list[grpc.aio.ServerInterceptor]:
    """Authentication (when keys are configured), then the bounds; both guard the Router service only."""
    prefix = f"/{ROUTER_SERVICE}/"
    auth = [AuthInterceptor(key_check, prefix)] if key_check is not None else []
    return [*auth, LimitsInterceptor(limits, prefix)]


class _ProbeContext:
    """The one thing HealthServicer.Check asks of its context: abort() for an unknown service."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise LookupError(code)


def _health_probe(health: health_aio.HealthServicer) -> Callable[[str], Awaitable[bool | None]]:
    """`service` -> SERVING? (None: unknown), answered by the gRPC health servicer itself."""

    async def probe(service: str) -> bool | None:
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), _ProbeContext())
        except LookupError:
            return None
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    return probe


def tier_secrets(config: RouterConfig) -> tuple[str, ...]:
    """The tiers' configured API keys (scrubbed from logs and from the HTTP door's errors)."""
    return tuple(
        tier.api_key.get_secret_value()
        for tier in (config.tiers.small, config.tiers.large)
        if tier.api_key is not None
    )


def model_registry(config: RouterConfig) -> ModelRegistry:
    """The models directory of `config` (`models.dir`), with its promotion pointer."""
    return ModelRegistry(config.models.root, config.models.active, config.models.keep)


def load_scorer(config: RouterConfig, path: Path | None = None, *, time_later: bool = False) -> TextScorer:
    """The classifier at `path`, else the promoted one (`models.dir/current`), else `models.dir/active`,
    verified against its manifest. With `time_later`, a choice of embedder file or threads ("auto") is
    timed by `finish_tuning()` (RouterServer.start does, once LiteLLM's import is over)."""
    from classifier.embedding import VARIANT_FILES
    from classifier.scoring import Scorer

    path = path if path is not None else model_registry(config).current_path()
    choice = config.scoring.embedder
    variant = None if choice == "trained" else "auto" if choice == "auto" else VARIANT_FILES[choice]
    scorer = Scorer.from_path(
        path, threads=config.scoring.threads, embedder_file=variant, time_later=time_later
    )
    if scorer.tuning_pending:
        log.info(
            "classifier %s: embedder files loaded and checked; timed once LiteLLM's import is over",
            scorer.version,
        )
    else:
        log_embedder_choice(config, scorer)
    return scorer


def log_embedder_choice(config: RouterConfig, scorer: Scorer) -> None:
    """The start-up lines: the embedder file served, the CPU, and what `auto` measured."""
    from classifier.cpu import describe_cpu

    choice = config.scoring.embedder
    log.info("embedder %s (scoring.embedder: %s) on %s", scorer.embedder.variant, choice, describe_cpu())
    if scorer.tuning is not None:  # scoring.embedder / scoring.threads: auto (classifier.autotune)
        log.info("classifier %s: %s", scorer.version, scorer.tuning.summary())


def verifier_registry(config: RouterConfig) -> ModelRegistry:
    """The answer head's registry: its directory is `active` until a promotion writes `<dir>/current`."""
    return ModelRegistry(config.verifier_dir, ".", config.models.keep)


def load_verifier(path: Path, scorer: TextScorer) -> AnswerScorer:
    """The answer-quality head at `path`, sharing the classifier's embedder when it exposes one.

    The classifier may serve another file of the embedder than the head was trained on
    (`scoring.embedder`, e.g. int8_full chosen by `auto`): a head that runs the embedder then loads its
    own trained file, one that does not (the shipped head) shares it unused."""
    from classifier.answer import AnswerScorer

    embedder = embedder_of(scorer)
    return AnswerScorer.from_path(path, embedder=embedder, own_file_if_other=True)  # type: ignore[arg-type]


def load_verifier_at_start(config: RouterConfig, scorer: TextScorer) -> tuple[AnswerScorer | None, str]:
    """(the answer head, "") when the cascade uses it, else (None, why not). A head that cannot load is
    logged once: the cascade then answers unverified by the head (its escalation_reason says so)."""
    settings = config.routing.cascade.head
    if not config.routing.uses_cascade() or not settings.enabled:
        return None, ""
    try:
        verifier = load_verifier(verifier_registry(config).current_path(), scorer)
    except Exception as exc:  # ModelLoadError, a missing directory: serve, unverified by the head
        reason = f"the answer head did not load: {exc}"
        log.error("%s", reason)
        return None, reason[:300]
    log.info("answer head %s loaded from %s", verifier.version, verifier.model_dir)
    return verifier, ""


async def serve(config: RouterConfig, source: ConfigSource | None = None) -> int:
    """Run until SIGTERM/SIGINT, then drain for `server.grace_period_s`; returns the exit status (0).

    With `source`, the config file is watched and SIGHUP reloads it.
    """
    # LiteLLM's import starts first, in a thread, and the port opens once it has finished: it overlaps the
    # classifier's load and the embedded child's start instead of holding the GIL while Route serves.
    backend = LiteLLMBackend()
    backend.start_loading()
    # The embedder files load and pass their parity checks during the import; timing them then would
    # measure the import's contention (all ran 1.5-4x slower, and the choice was a coin toss), so start()
    # times them once it is over, before the port opens.
    scorer = load_scorer(config, time_later=True)
    server, port = create_server(config, scorer=scorer, source=source, backend=backend)
    release_free_memory()  # loading the embedder leaves its parse buffers freed but resident
    freeze_startup_objects()  # start-up objects live as long as the process: no GC walks them
    install_secret_filter(tier_secrets(config))
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, _on_signal, server, stopping, signum)
    # SIGHUP's default action ends the process: without a file to reload it is only logged.
    loop.add_signal_handler(signal.SIGHUP, server.reloader.request_reload if server.reloader else _no_reload)
    signals = (*signals, signal.SIGHUP)
    try:
        await server.start(backend_first=True)
        host = config.server.host
        metrics = f", metrics on http://{host}:{server.metrics_port}/metrics" if server.metrics_port else ""
        if server.http is not None and config.server.http is not None:
            door = f"{server.http.scheme}://{config.server.http.host}:{server.http.port}/v1"
            metrics += f", OpenAI-compatible HTTP on {door}"
        log.info("serving rightsize.v1.Router on %s:%d%s", host, port, metrics)
        await stopping.wait()
        log.info("draining in-flight calls (at most %.1f s)", config.server.grace_period_s)
        await server.stop(config.server.grace_period_s)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0


def _no_reload() -> None:
    log.warning("SIGHUP received: serving without --config, so there is no file to reload")


def _on_signal(server: RouterServer, stopping: asyncio.Event, signum: int) -> None:
    if stopping.is_set():
        # A second signal: stop waiting for in-flight calls.
        log.warning("%s again: cancelling in-flight calls", signal.Signals(signum).name)
        asyncio.get_running_loop().create_task(server.grpc_server.stop(None))
        return
    log.info("%s received", signal.Signals(signum).name)
    stopping.set()
