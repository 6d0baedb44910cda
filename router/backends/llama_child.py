"""A managed embedded model: one `llama_cpp.server` child process, started, watched, restarted and stopped.
The child runs router/backends/llama_server.py: llama_cpp.server with logits_all off and cheap logprobs.

The child serves an OpenAI-compatible API on loopback, so LiteLLM reaches it as `hosted_vllm/<alias>`,
the path a real vLLM deployment takes. Nothing here imports llama_cpp: the [local] extra is looked up
with importlib.util.find_spec, and the model runs in its own process.

Lifecycle of an `EmbeddedProcess`, on a supervisor thread:
starting (spawned, polling /v1/models) -> up -> (the child dies) -> backoff -> starting -> ...
Backoff doubles from 0.5 s to 30 s and resets once a child stayed up for 60 s. `stop()` sends SIGTERM,
then SIGKILL after a grace. The child also dies with the parent (see router/backends/launch.py).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from router.config.embedded import (
    EmbeddedOptions,
    embedded_alias,
    gguf_path,
)

log = logging.getLogger(__name__)
child_log = logging.getLogger(f"{__name__}.child")

# The child gets only these variables: llama_cpp.server's settings read any environment variable named
# like a setting (HOST, PORT, MODEL, API_KEY, ...), and an inherited API_KEY would lock the router out.
_CHILD_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "PYTHONUNBUFFERED",
)
_CHILD_ENV_PREFIXES = ("GGML_", "OMP_", "CUDA_")
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # a child up this long resets the backoff
POLL_S = 0.1
LAUNCHER = Path(__file__).with_name("launch.py")  # stdlib only; see router/backends/launch.py
SERVER_SCRIPT = Path(__file__).with_name("llama_server.py")  # llama_cpp.server, patched; run by path
Phase = Literal["idle", "starting", "up", "backoff", "stopped"]


def default_threads() -> int:
    """Half the CPUs: on 2 cores, 2 llama.cpp threads spin against the router's and ran 5-20x slower."""
    return max(1, (os.cpu_count() or 2) // 2)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now; kept for the child's whole life, so restarts keep its api_base."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class EmbeddedSpec:
    """What the child runs: `gguf` served as `alias` on http://`host`:`port`/v1."""

    gguf: Path
    alias: str
    port: int
    host: str = "127.0.0.1"
    n_ctx: int = 2048
    threads: int = 1
    ready_timeout_s: float = 120.0
    # A module run with -m, or a script path run with -P. The default is llama_cpp.server with cheap logprobs
    # and logits_all off (router/backends/llama_server.py); tests put a stand-in module here.
    server_module: str = str(SERVER_SCRIPT)

    @classmethod
    def from_embedded(cls, embedded: str, options: EmbeddedOptions | None = None) -> EmbeddedSpec:
        """The spec for a tier's `embedded` value; port 0 in the options becomes a free port now."""
        options = options or EmbeddedOptions()
        return cls(
            gguf=gguf_path(embedded),
            alias=embedded_alias(embedded),
            port=options.port or free_port(),
            n_ctx=options.n_ctx,
            threads=options.threads or default_threads(),
            ready_timeout_s=options.ready_timeout_s,
        )

    @property
    def api_base(self) -> str:
        """The OpenAI-compatible base URL LiteLLM uses (`hosted_vllm/<alias>`)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def litellm_model(self) -> str:
        return f"hosted_vllm/{self.alias}"

    def command(self, parent_pid: int) -> list[str]:
        """The child's argv: the launcher, which arranges to die with `parent_pid`, then execs the server."""
        python = sys.executable
        # Run by path with -P (nothing prepended to sys.path): `-m router.backends.launch` would first import
        # the router.backends package (~0.4 s) before every start of the child.
        return [
            python,
            "-P",
            str(LAUNCHER),
            str(parent_pid),
            "--",
            python,
            *(["-P"] if self.server_module.endswith(".py") else ["-m"]),
            self.server_module,
            "--model",
            str(self.gguf),
            "--model_alias",
            self.alias,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads),
            # A second request must queue, not cut a stream in flight (the server's default interrupts it).
            "--interrupt_requests",
            "False",
            "--verbose",
            "False",
        ]


@dataclass(frozen=True)
class EmbeddedState:
    """A snapshot of the child: `phase`, its pid, restarts since start, and a human-readable `detail`."""

    phase: Phase
    pid: int | None = None
    restarts: int = 0
    detail: str = "not started"

    @property
    def up(self) -> bool:
        return self.phase == "up"


StateListener = Callable[[EmbeddedState], None]


class EmbeddedProcess:
    """Supervises one llama.cpp child; `start()` returns at once, `stop()` leaves no process behind."""

    def __init__(self, spec: EmbeddedSpec, on_change: StateListener | None = None, name: str = "local"):
        self.spec = spec
        self.name = name
        self._on_change = on_change
        self._state = EmbeddedState("idle")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=20)

    @property
    def state(self) -> EmbeddedState:
        with self._lock:
            return self._state

    def start(self) -> None:
        """Spawn the child and supervise it on a thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            # PR_SET_PDEATHSIG fires when the thread that forked the child ends: this thread lives until
            # stop() or the process's exit, which is exactly the child's life.
            self._thread = threading.Thread(
                target=self._supervise, name=f"local-model-{self.name}", daemon=True
            )
            self._thread.start()

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Block until the child answers (True) or `timeout_s` passes or it is stopped (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._changed:
            while self._state.phase != "up" and self._state.phase != "stopped":
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._state.up

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop supervising; SIGTERM the child, SIGKILL it after `grace_s`; returns when it is gone."""
        self._stopping.set()
        with self._lock:
            process, thread = self._process, self._thread
        if process is not None:
            _terminate(process, grace_s)
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._publish(replace(self.state, phase="stopped", pid=None, detail="stopped"))

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            reason = self._run_once()
            if self._stopping.is_set():
                break
            failures = 1 if time.monotonic() - started >= STABLE_S else failures + 1
            delay = min(BACKOFF_FIRST_S * 2 ** (failures - 1), BACKOFF_MAX_S)
            restarts = self.state.restarts + 1
            detail = f"{reason}; restart {restarts} in {delay:.1f} s"
            log.warning("%s: %s: %s", self.name, self.spec.alias, detail)
            self._publish(EmbeddedState("backoff", None, restarts, detail))
            if self._stopping.wait(delay):
                break

    def _run_once(self) -> str:
        """Run one child until it exits; returns why it ended."""
        restarts = self.state.restarts
        try:
            process = self._spawn()
        except OSError as exc:
            return f"cannot start {self.spec.server_module}: {exc}"
        if process is None:  # stop() came first
            return "stopped"
        self._publish(EmbeddedState("starting", process.pid, restarts, f"loading {self.spec.gguf.name}"))
        started = time.monotonic()
        if not self._await_ready(process):
            if process.poll() is None:
                _terminate(process, 2.0)
                return f"not ready within {self.spec.ready_timeout_s:g} s"
            return self._exit_reason(process, "during start")
        ready_s = time.monotonic() - started
        log.info(
            "%s: live: %s answers on %s (pid %d, ready in %.1f s)",
            self.name,
            self.spec.alias,
            self.spec.api_base,
            process.pid,
            ready_s,
        )
        self._publish(
            EmbeddedState(
                "up", process.pid, restarts, f"answering on {self.spec.api_base} (pid {process.pid})"
            )
        )
        process.wait()
        return self._exit_reason(process, "")

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        self._tail.clear()
        with self._lock:
            if self._stopping.is_set():
                return None
            # A session of its own: a Ctrl-C in the terminal reaches only the router, which stops the child
            # in order; stop() signals the whole group.
            process = subprocess.Popen(
                self.spec.command(os.getpid()),
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._process = process
        threading.Thread(
            target=self._read_output, args=(process,), name=f"local-model-{self.name}-out", daemon=True
        ).start()
        return process

    def _read_output(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self._tail.append(line)
                    child_log.debug("%s: %s", self.name, line)

    def _await_ready(self, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + self.spec.ready_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if process.poll() is not None:
                return False
            if serves_alias(self.spec.api_base, self.spec.alias):
                return True
            self._stopping.wait(POLL_S)
        return False

    def _exit_reason(self, process: subprocess.Popen[bytes], when: str) -> str:
        code = process.wait()
        status = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        time.sleep(0.05)  # let the reader thread take the last lines
        last = next((line for line in reversed(self._tail) if not line.startswith("INFO:")), "")
        return " ".join(part for part in (f"child {status}", when, f"({last[:200]})" if last else "") if part)

    def _publish(self, state: EmbeddedState) -> None:
        with self._changed:
            if state == self._state:
                return
            self._state = state
            self._changed.notify_all()
        if self._on_change is not None:
            self._on_change(state)


def serves_alias(api_base: str, alias: str, timeout_s: float = 1.0) -> bool:
    """True when GET `api_base`/models lists `alias` (so the port is ours, not another program's)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes via a proxy
    try:
        with opener.open(f"{api_base}/models", timeout=timeout_s) as response:
            listed = json.load(response).get("data", [])
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(entry, dict) and entry.get("id") == alias for entry in listed)


def _child_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key in _CHILD_ENV or key.startswith(_CHILD_ENV_PREFIXES)
    }


def _terminate(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace_s`, and reap it."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def terminate_all(processes: Sequence[EmbeddedProcess], grace_s: float = 5.0) -> None:
    """Stop several children in parallel, so the grace periods overlap."""
    threads = [threading.Thread(target=process.stop, args=(grace_s,)) for process in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
