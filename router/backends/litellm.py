"""LiteLLM dispatch: one tier's call, unary or streamed, with LiteLLM's errors translated to BackendError.

LiteLLM is never imported on the Route path: `import litellm` costs 1.6-6 s and ~120 MB, so
`LiteLLMBackend.start_loading()` imports it in a thread. `rightsize serve` starts it before the classifier
loads and opens the port once it has finished (an import in the background while Route answers held the
GIL and made Route 2.6x slower); a server started without waiting lets a completion that arrives earlier
wait for the import, within its deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from router.config import TierSettings
from router.domain import (
    Generation,
    GenerationDelta,
    GenerationParams,
    Message,
    Tier,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from router.errors import BackendError, NotReadyError
from router.redact import scrub
from router.structured import (
    PLAIN,
    StructuredSpec,
    UnsupportedFeatureError,
    call_from_content,
    litellm_request,
)

log = logging.getLogger(__name__)
# The backend call ends this long before the client's deadline, so our own status (not the transport's
# cancellation) reaches the client.
DEADLINE_MARGIN_S = 0.02
OLLAMA_PREFIXES = ("ollama/", "ollama_chat/")


@dataclass(frozen=True)
class BackendCall:
    """One model call. `deadline` is a time.monotonic() instant (None: only the tier's own timeout).

    `spec` is the request's validated response format and tools (router.structured)."""

    tier: Tier
    settings: TierSettings
    messages: Sequence[Message]
    params: GenerationParams
    deadline: float | None = None
    spec: StructuredSpec = PLAIN
    # Ask for token log-probabilities (top 2 per token) for the cascade's confidence verifier. Providers
    # that cannot return them (Ollama through LiteLLM 1.82.6) are not asked; the answer then has none.
    logprobs: bool = False

    def timeout_s(self) -> float | None:
        """Seconds left for this call: the tier's `timeout`, shortened by the deadline (minus a margin)."""
        limits = [self.settings.timeout] if self.settings.timeout else []
        if self.deadline is not None:
            limits.append(self.deadline - time.monotonic() - DEADLINE_MARGIN_S)
        return max(min(limits), 0.0) if limits else None


class Backend(Protocol):
    """The seam between the pipeline and the model providers."""

    async def complete(self, call: BackendCall) -> Generation: ...

    def stream(self, call: BackendCall) -> AsyncGenerator[GenerationDelta, None]: ...


class LiteLLMBackend:
    """Calls `litellm.acompletion`; `start_loading()` must be called once before the first call."""

    def __init__(self) -> None:
        self._litellm: Any = None
        self._loaded = threading.Event()
        self._load_error: str | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._mapped: set[str] = set()  # Ollama models entered in LiteLLM's model map (see _prepare)

    @property
    def ready(self) -> bool:
        """True once LiteLLM is imported and usable."""
        return self._litellm is not None

    @property
    def load_error(self) -> str | None:
        return self._load_error

    def wait_loaded(self, timeout_s: float | None = None) -> bool:
        """Block until the import finished (or `timeout_s` passed); True when LiteLLM is usable."""
        self._loaded.wait(timeout_s)
        return self.ready

    def start_loading(self) -> None:
        """Import LiteLLM in a daemon thread (idempotent); see `wait_loaded()`."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._load, name="litellm-import", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            litellm = import_litellm()

            litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on stdout
            litellm.telemetry = False
            _quiet_litellm_loggers()
            self._litellm = litellm
            log.info("completion backend ready (litellm imported in %.1f s)", time.perf_counter() - started)
        except Exception as exc:  # a broken install must not take Route down with it
            self._load_error = f"{type(exc).__name__}: {exc}"
            log.error("completion backend failed to load: %s", self._load_error)
        finally:
            self._loaded.set()

    async def _module(self, deadline: float | None) -> Any:
        if self._litellm is None:
            self.start_loading()
            wait_s = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            await asyncio.get_running_loop().run_in_executor(None, self._loaded.wait, wait_s)
            if self._litellm is None:
                raise NotReadyError(self._load_error or "the completion backend is still loading")
        return self._litellm

    async def _prepare(self, call: BackendCall) -> Any:
        """LiteLLM, loaded; an Ollama model is first entered in its model map (once per model name).

        LiteLLM looks up a model missing from its map before every call, and for Ollama that lookup is
        a blocking POST to /api/show (three per completion in LiteLLM 1.82.6), sent to $OLLAMA_API_BASE
        or localhost:11434 rather than the tier's api_base. Entering the model once ends those requests;
        `register_model` makes one such lookup itself, so it runs off the event loop.
        """
        litellm = await self._module(call.deadline)
        model = call.settings.model
        if model not in self._mapped and model.startswith(OLLAMA_PREFIXES):
            self._mapped.add(model)
            # What LiteLLM's own lookup returns for a model it cannot fetch (our cost_usd() prices the tier).
            info = {
                "litellm_provider": model.split("/", 1)[0],
                "mode": "chat",
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
            }
            entry = {model: info}
            try:
                await asyncio.get_running_loop().run_in_executor(None, litellm.register_model, entry)
            except Exception as exc:  # the call still works unmapped, with LiteLLM's own lookups
                log.debug("could not enter %s in LiteLLM's model map: %s", model, exc)
        return litellm

    async def aclose(self) -> None:
        """Run LiteLLM's queued logging callbacks and stop its logging worker (bound to this event loop).

        Without this, callbacks queued by the last calls are dropped un-awaited when the loop closes.
        """
        if self._litellm is None:
            return
        try:
            from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
        except ImportError:  # a LiteLLM without the worker has nothing to flush
            return
        await asyncio.sleep(0)  # let just-finished calls enqueue their callbacks
        await GLOBAL_LOGGING_WORKER.clear_queue()
        await GLOBAL_LOGGING_WORKER.stop()

    async def complete(self, call: BackendCall) -> Generation:
        """One unary completion; raises BackendError naming the tier on any provider failure."""
        litellm = await self._prepare(call)
        timeout = call.timeout_s()
        try:
            kwargs, call_in_content = _kwargs(call, timeout)
            async with asyncio.timeout(timeout):
                response = await litellm.acompletion(**kwargs)
        except Exception as exc:  # LiteLLM's adapters raise many types; any of them fails this tier
            raise translate_error(call, exc, timeout) from exc
        choice = response.choices[0]
        usage = _usage(getattr(response, "usage", None)) or Usage()
        text, finish_reason = choice.message.content or "", choice.finish_reason or ""
        tool_calls = _tool_calls(getattr(choice.message, "tool_calls", None))
        forced = call_from_content(text) if call_in_content and not tool_calls else None
        if forced is not None:
            text, finish_reason, tool_calls = "", "tool_calls", (forced,)
        if not text and not tool_calls and finish_reason != "length":
            raise BackendError(call.tier, call.settings.model, "empty", "the model returned no text")
        return Generation(
            text=text,
            model=call.settings.model,
            usage=usage,
            cost_usd=self.cost_usd(call.settings, usage),
            finish_reason=finish_reason,
            tool_calls=tool_calls,
            logprobs=_logprobs(getattr(choice, "logprobs", None)) if call.logprobs else None,
        )

    async def stream(self, call: BackendCall) -> AsyncGenerator[GenerationDelta, None]:
        """Stream a completion: text deltas, then one last delta with finish_reason, usage and cost."""
        litellm = await self._prepare(call)
        timeout = call.timeout_s()
        hard_deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        finish_reason, usage, any_text = "", None, False
        calls = _CallAssembler()
        idle_s = call.settings.idle_timeout
        held: list[str] = []  # a call asked for as content: its JSON, held back until it is whole
        try:
            kwargs, call_in_content = _kwargs(call, timeout)
            async with asyncio.timeout_at(hard_deadline):
                response = await litellm.acompletion(
                    **kwargs, stream=True, stream_options={"include_usage": True}
                )
            chunks = aiter(response)
            while True:
                # The timeout must not span the `yield`: the consumer's own awaits are not ours to cancel.
                async with asyncio.timeout_at(_sooner(hard_deadline, idle_s)):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                usage = _usage(getattr(chunk, "usage", None)) or usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish_reason = choice.finish_reason or finish_reason
                pieces = calls.add(getattr(choice.delta, "tool_calls", None))
                if call_in_content and choice.delta.content:
                    held.append(choice.delta.content)
                elif choice.delta.content or pieces:
                    any_text = any_text or bool(choice.delta.content)
                    yield GenerationDelta(text=choice.delta.content or "", tool_call_deltas=pieces)
        except Exception as exc:  # LiteLLM's adapters raise many types; any of them fails this tier
            raise translate_error(call, exc, timeout) from exc
        tool_calls = calls.complete()
        if held:
            forced = None if tool_calls else call_from_content("".join(held))
            if forced is None:  # not a call after all: the text, for the answer check to report
                any_text = True
                yield GenerationDelta(text="".join(held))
            else:
                tool_calls, finish_reason = (forced,), "tool_calls"
                delta = ToolCallDelta(
                    0, id=forced.id, name=forced.name, arguments_delta=forced.arguments_json
                )
                yield GenerationDelta(text="", tool_call_deltas=(delta,))
        if not any_text and not tool_calls and finish_reason != "length":
            raise BackendError(call.tier, call.settings.model, "empty", "the model streamed no text")
        usage = usage or Usage()
        yield GenerationDelta(
            text="",
            finish_reason=finish_reason,
            usage=usage,
            cost_usd=self.cost_usd(call.settings, usage),
            tool_calls=tool_calls,
        )

    def cost_usd(self, settings: TierSettings, usage: Usage) -> float:
        """USD for `usage`: the tier's configured prices, else 0 for local tiers, else LiteLLM's price map."""
        if settings.has_price:
            return usage.prompt_tokens * (settings.input_cost_per_token or 0.0) + usage.completion_tokens * (
                settings.output_cost_per_token or 0.0
            )
        if settings.is_self_hosted or self._litellm is None:
            return 0.0
        try:
            prompt_cost, completion_cost = self._litellm.cost_per_token(
                model=settings.model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )
        except Exception as exc:  # LiteLLM raises a bare Exception for models missing from its price map
            log.debug("no price for %s: %s", settings.model, exc)
            return 0.0
        return float(prompt_cost + completion_cost)


def _quiet_litellm_loggers() -> None:
    # LiteLLM logs every call at INFO through its own coloured handler; route its warnings and errors
    # through the service's logging instead, once each.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.WARNING)
        logger.propagate = True


def translate_error(call: BackendCall, exc: BaseException, timeout_s: float | None = None) -> BackendError:
    """Map a LiteLLM/openai/httpx/asyncio failure to BackendError with a low-cardinality kind."""
    if isinstance(exc, BackendError):
        return exc
    # A provider may echo the key it was sent; it must not reach logs, metrics or the client.
    secret = call.settings.api_key.get_secret_value() if call.settings.api_key is not None else ""
    detail = scrub(" ".join(str(exc).split()), (secret,))[:300]
    if isinstance(exc, TimeoutError) and not detail:
        detail = f"no answer within {timeout_s:.2f} s" if timeout_s is not None else "timed out"
    error = BackendError(call.tier, call.settings.model, _error_kind(exc), detail or type(exc).__name__)
    error.retry_after_s = _retry_after_s(exc)
    return error


def import_litellm() -> Any:
    """`import litellm` with the environment a server wants (both set only when the operator has not):

    - LITELLM_LOCAL_MODEL_COST_MAP: the bundled price map, not a download at import;
    - LITELLM_MODE=PRODUCTION: in its default DEV mode, importing litellm loads a `.env` file from the
      working directory into os.environ, so a stray file could add keys or settings to the service.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    import litellm

    return litellm


def _retry_after_s(exc: BaseException) -> float | None:
    """A Retry-After (seconds) or retry-after-ms header on the provider's error response, if any."""
    headers = (
        getattr(exc, "litellm_response_headers", None)
        or getattr(getattr(exc, "response", None), "headers", None)
        or {}
    )
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except (TypeError, ValueError):  # an HTTP date, or garbage: no hint
        return None
    return None


def _sooner(deadline: float | None, idle_s: float | None) -> float | None:
    """The earlier of a loop-time deadline and `idle_s` from now."""
    if idle_s is None:
        return deadline
    idle_deadline = asyncio.get_running_loop().time() + idle_s
    return idle_deadline if deadline is None else min(deadline, idle_deadline)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    import openai  # already imported by litellm by the time a call can fail

    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (openai.APITimeoutError, "timeout"),
        (openai.APIConnectionError, "connection"),
        (openai.AuthenticationError, "auth"),
        (openai.PermissionDeniedError, "auth"),
        (openai.RateLimitError, "rate_limit"),
        (openai.BadRequestError, "bad_request"),
        (openai.NotFoundError, "bad_request"),
        (openai.UnprocessableEntityError, "bad_request"),
    )
    for exc_type, kind in kinds:
        if isinstance(exc, exc_type):
            return kind
    if isinstance(exc, openai.OpenAIError):
        return "server"
    return "protocol"


def _kwargs(call: BackendCall, timeout: float | None) -> tuple[dict[str, Any], bool]:
    """LiteLLM's arguments for `call`, and whether a tool call was asked for as content
    (`ProviderRequest.call_in_content`)."""
    kwargs = call.settings.litellm_kwargs()
    params = call.params
    try:
        provider = litellm_request(
            call.settings.model,
            call.spec,
            call.messages,
            embedded=call.settings.embedded is not None,
            seed=params.seed,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
        )
    except UnsupportedFeatureError as exc:  # this tier cannot; the other one may (the pipeline's fallback)
        raise BackendError(call.tier, call.settings.model, "unsupported", str(exc)) from exc
    for note in provider.notes:
        log.debug("%s tier (%s): %s", call.tier, call.settings.model, note)
    kwargs["messages"] = provider.messages
    for name, value in provider.kwargs.items():
        if name == "extra_body" and isinstance(kwargs.get("extra_body"), dict):
            kwargs["extra_body"] = {**kwargs["extra_body"], **value}  # the request's keys over the tier's
        else:
            kwargs[name] = value
    kwargs.setdefault("drop_params", True)  # a sampling knob a provider lacks is dropped, not an error
    # No hidden SDK retries (the OpenAI client's default is 2, sleeping out each Retry-After): the
    # fallback tier and the breaker handle a failure within the caller's deadline. A tier may set it.
    kwargs.setdefault("max_retries", 0)
    if timeout is not None:
        kwargs["timeout"] = timeout
    if params.max_tokens is not None:
        kwargs["max_tokens"] = params.max_tokens
    if params.temperature is not None:
        kwargs["temperature"] = params.temperature
    if params.top_p is not None:
        kwargs["top_p"] = params.top_p
    if params.stop:
        kwargs["stop"] = list(params.stop)
    if call.logprobs and supports_logprobs(call.settings.model):
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = 2  # the second-best token gives the top-1/top-2 margin
    return kwargs, provider.call_in_content


def supports_logprobs(model: str) -> bool:
    """Whether LiteLLM 1.82.6 passes `logprobs` to this provider and returns them: not for Ollama (its
    chat and completion adapters drop the parameter); OpenAI-compatible servers (vLLM, llama.cpp) do."""
    return not model.startswith(OLLAMA_PREFIXES)


def _logprobs(raw: Any) -> tuple[tuple[float, float | None], ...] | None:
    """`choices[0].logprobs` (OpenAI shape) as (logprob, second-best) pairs; None when absent."""
    from classifier.answer import parse_openai_logprobs

    content = raw.get("content") if isinstance(raw, dict) else getattr(raw, "content", None)
    tokens = parse_openai_logprobs(content)
    return None if tokens is None else tuple((token.logprob, token.second) for token in tokens)


def _tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    """LiteLLM's (OpenAI-shaped) tool calls of a message as domain ToolCalls."""
    calls = []
    for index, item in enumerate(raw or ()):
        function = getattr(item, "function", None)
        arguments = getattr(function, "arguments", None) or "{}"
        if not isinstance(arguments, str):  # an object from a provider adapter: keep JSON text
            arguments = json.dumps(arguments)
        name = getattr(function, "name", None) or ""
        calls.append(ToolCall(getattr(item, "id", None) or f"call_{index}", name, arguments))
    return tuple(calls)


class _CallAssembler:
    """Streamed tool-call pieces (OpenAI's delta.tool_calls), kept in order and joined per index."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments so far]

    def add(self, raw: Any) -> tuple[ToolCallDelta, ...]:
        pieces = []
        for position, item in enumerate(raw or ()):
            index = getattr(item, "index", None)
            index = position if index is None else int(index)
            function = getattr(item, "function", None)
            name = (getattr(function, "name", None) or "") if function is not None else ""
            arguments = (getattr(function, "arguments", None) or "") if function is not None else ""
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            call_id = getattr(item, "id", None) or ""
            current = self._calls.setdefault(index, ["", "", ""])
            current[0] = current[0] or call_id
            current[1] = current[1] or name
            current[2] += arguments
            pieces.append(ToolCallDelta(index, id=call_id, name=name, arguments_delta=arguments))
        return tuple(pieces)

    def complete(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(call_id or f"call_{index}", name, arguments or "{}")
            for index, (call_id, name, arguments) in sorted(self._calls.items())
        )


def _usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    return Usage(
        prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
    )
