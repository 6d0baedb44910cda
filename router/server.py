"""The gRPC server: Router + health + reflection + /metrics, start-up, and graceful drain on SIGTERM/SIGINT.

Health is reported per service:
- "" and "rightsize.v1.Router": SERVING from start, since the classifier is loaded before the port opens
  (Route is ready; a Complete that arrives while LiteLLM still loads waits for it within its deadline);
- "rightsize.v1.Router/Complete": SERVING once LiteLLM is imported (about 3 s after start), NOT_SERVING
  before that or if the import failed.
All turn NOT_SERVING when the drain starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from router.backends import LiteLLMBackend
from router.config import RouterConfig
from router.errors import RouterError
from router.metrics import RouterMetrics
from router.pipeline import Pipeline
from router.scoring import ScoringQueue, TextScorer
from router.service import RouterService

log = logging.getLogger(__name__)

ROUTER_SERVICE = pb.DESCRIPTOR.services_by_name["Router"].full_name
COMPLETION_HEALTH_SERVICE = f"{ROUTER_SERVICE}/Complete"


class RouterServer:
    """A bound, not yet started server. Build it with `create_server()`."""

    def __init__(
        self,
        config: RouterConfig,
        grpc_server: grpc.aio.Server,
        pipeline: Pipeline,
        backend: LiteLLMBackend,
        health: health_aio.HealthServicer,
        metrics: RouterMetrics,
    ):
        self.config = config
        self.grpc_server = grpc_server
        self.pipeline = pipeline
        self.backend = backend
        self.health = health
        self.metrics = metrics
        self.metrics_port: int | None = None
        self._health_update: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving: health SERVING for Route at once, for Complete once LiteLLM is loaded."""
        server = self.config.server
        if server.metrics_port is not None:
            address = server.metrics_address or server.host
            try:
                self.metrics_port = self.metrics.serve_http(server.metrics_port, address)
            except OSError as exc:
                raise RouterError(f"cannot serve metrics on {address}:{server.metrics_port}: {exc}") from exc
        await self.grpc_server.start()
        for service in ("", ROUTER_SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(COMPLETION_HEALTH_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.metrics.ready.labels("classifier").set(1)
        _warn_missing_keys(self.config)
        self.backend.start_loading()
        # A daemon thread, not the loop's executor: shutting down must not wait for LiteLLM's import.
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._watch_backend, args=(loop,), name="litellm-watch", daemon=True).start()

    def _watch_backend(self, loop: asyncio.AbstractEventLoop) -> None:
        ok = self.backend.wait_loaded()
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody is left to tell
            loop.call_soon_threadsafe(self._backend_loaded, ok)

    def _backend_loaded(self, ok: bool) -> None:
        self.metrics.ready.labels("completion").set(1 if ok else 0)
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        self._health_update = asyncio.get_running_loop().create_task(
            self.health.set(COMPLETION_HEALTH_SERVICE, status)
        )

    async def stop(self, grace_s: float | None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones run `grace_s` seconds more, close."""
        await self.health.enter_graceful_shutdown()
        await self.grpc_server.stop(grace_s)
        await self.backend.aclose()
        self.pipeline.scoring.close()
        self.metrics.close()


def create_server(
    config: RouterConfig,
    *,
    scorer: TextScorer | None = None,
    backend: LiteLLMBackend | None = None,
    metrics: RouterMetrics | None = None,
) -> tuple[RouterServer, int]:
    """Build the server and bind `config.server.address`; returns it (not started) and the bound port.

    `scorer` defaults to the model directory `config.models.path`, loaded and verified here (slow: ~0.3 s);
    pass one to share it between servers. Raises RouterError / ClassifierError when it cannot start.
    """
    scorer = scorer if scorer is not None else load_scorer(config)
    backend = backend if backend is not None else LiteLLMBackend()
    metrics = metrics if metrics is not None else RouterMetrics()
    scoring = ScoringQueue(
        scorer,
        max_batch=config.scoring.max_batch,
        observe=lambda size, _seconds: metrics.batch_size.observe(size),
    )
    pipeline = Pipeline(config, scoring, backend, metrics)
    # SO_REUSEPORT off: a second server on a busy port must fail, not silently share it.
    grpc_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_RouterServicer_to_server(RouterService(pipeline, metrics), grpc_server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, grpc_server)
    reflection.enable_server_reflection(
        (ROUTER_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        grpc_server,
    )
    try:
        port = grpc_server.add_insecure_port(config.server.address)
    except RuntimeError as exc:
        raise RouterError(f"cannot listen on {config.server.address}: {exc}") from exc
    if port == 0:
        raise RouterError(f"cannot listen on {config.server.address} (address in use?)")
    return RouterServer(config, grpc_server, pipeline, backend, health, metrics), port


def _warn_missing_keys(config: RouterConfig) -> None:
    for name, tier in (("small", config.tiers.small), ("large", config.tiers.large)):
        if tier.api_key_env and tier.api_key is None:
            log.warning("tiers.%s: %s is not set; calls to %s will fail", name, tier.api_key_env, tier.model)


def load_scorer(config: RouterConfig) -> TextScorer:
    """The classifier named by `models.dir`/`models.active`, verified against its manifest."""
    from classifier.scoring import Scorer

    path: Path = config.models.path
    return Scorer.from_path(path, threads=config.scoring.threads)


async def serve(config: RouterConfig) -> int:
    """Run until SIGTERM/SIGINT, then drain for `server.grace_period_s`; returns the exit status (0)."""
    # LiteLLM's import starts in start(), after the classifier loaded: overlapping them only slows both
    # (measured: exec to SERVING 0.9 s instead of 1.1 s).
    server, port = create_server(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, _on_signal, server, stopping, signum)
    try:
        await server.start()
        host = config.server.host
        metrics = f", metrics on http://{host}:{server.metrics_port}/metrics" if server.metrics_port else ""
        log.info("serving rightsize.v1.Router on %s:%d%s", host, port, metrics)
        await stopping.wait()
        log.info("draining in-flight calls (at most %.1f s)", config.server.grace_period_s)
        await server.stop(config.server.grace_period_s)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return 0


def _on_signal(server: RouterServer, stopping: asyncio.Event, signum: int) -> None:
    if stopping.is_set():
        # A second signal: stop waiting for in-flight calls.
        log.warning("%s again: cancelling in-flight calls", signal.Signals(signum).name)
        asyncio.get_running_loop().create_task(server.grpc_server.stop(None))
        return
    log.info("%s received", signal.Signals(signum).name)
    stopping.set()
