"""A scale-out deployment on loopback: `rightsize serve` replicas, nginx in front (grpc_pass over HTTP/2),
one PostgreSQL log, and a load of gRPC clients using the retry policy of scripts/deploy/."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from router._proto import router_pb2 as pb
from router._proto import router_pb2_grpc as pb_grpc
from tests.router.serve_process import ServeProcess
from tests.router.test_serve_process import wait_serving

ROOT = Path(__file__).resolve().parents[2]
SERVICE_CONFIG = ROOT / "scripts" / "deploy" / "grpc_service_config.json"


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, pause_s: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy (returned); AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(pause_s)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Replica:
    """`rightsize serve --config SHARED --address 127.0.0.1:PORT` (port 0: any; a restart keeps the port)."""

    def __init__(self, config_path: Path, port: int = 0) -> None:
        self.config_path = config_path
        self.port = port
        self.metrics_port = 0
        self.serve: ServeProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def replica_id(self) -> str:
        """The id its log records carry: the default `<hostname>:<bound port>` (router.config.settings)."""
        return f"{socket.gethostname()}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.serve is not None
        return self.serve.process.pid

    def start(self) -> Replica:
        args = ["--address", f"127.0.0.1:{self.port}", "--metrics-port", "0"]
        self.serve = ServeProcess(self.config_path, args=args)
        return self

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until the port is open and the server's health is SERVING (Route works)."""
        assert self.serve is not None
        line = self.serve.wait_for_line(
            r"serving rightsize\.v1\.Router on \S+:(\d+), metrics on \S+:(\d+)/", timeout_s
        )
        self.port, self.metrics_port = int(line.group(1)), int(line.group(2))
        with grpc.insecure_channel(self.address) as channel:
            wait_serving(channel, "", timeout_s)

    def kill(self) -> None:
        """kill -9, and wait for it."""
        assert self.serve is not None
        os.kill(self.pid, signal.SIGKILL)
        self.serve.process.wait(10)
        self.serve.close()

    def stop(self) -> None:
        """SIGTERM (drain, flush the log), or kill -9 when that takes too long."""
        if self.serve is None:
            return
        if self.serve.process.poll() is None:
            self.serve.process.send_signal(signal.SIGTERM)
            try:
                self.serve.process.wait(20)
            except subprocess.TimeoutExpired:
                self.serve.process.kill()
                self.serve.process.wait(10)
        self.serve.close()

    def metric(self, name: str) -> float | None:
        """One unlabelled sample of this replica's /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        return None

    def route(self, text: str, request_id: str) -> pb.RouteResponse:
        """One Route straight to this replica (not through the balancer)."""
        with grpc.insecure_channel(self.address) as channel:
            request = pb.RouteRequest(messages=[pb.Message(role="user", content=text)], request_id=request_id)
            return pb_grpc.RouterStub(channel).Route(request, timeout=10)


class Nginx:
    """nginx in the foreground (daemon off) on a loopback port, balancing gRPC over the replicas' ports."""

    def __init__(self, directory: Path, upstream_ports: Sequence[int]) -> None:
        self.directory = directory
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "logs").mkdir(exist_ok=True)
        (directory / "tmp").mkdir(exist_ok=True)
        self.conf = directory / "nginx.conf"
        self.conf.write_text(nginx_conf(self.port, upstream_ports, directory))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(self.conf), "-e", str(directory / "logs" / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(self._accepting, 10, "nginx to listen")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accepting(self) -> bool:
        if self.process.poll() is not None:
            assert self.process.stderr is not None
            raise AssertionError(f"nginx exited: {self.process.stderr.read()}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()


def nginx_conf(port: int, upstream_ports: Sequence[int], directory: Path) -> str:
    """A gRPC load balancer: HTTP/2 in, HTTP/2 (grpc_pass) to the replicas, round robin, and a replica
    that refuses connections is skipped (grpc_next_upstream) and left alone for `fail_timeout`."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstream_ports)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers keep the test's user (tmp dirs are 0700)
    temp = "\n".join(
        f"    {kind}_temp_path {directory / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    upstream routers {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            grpc_pass grpc://routers;
            grpc_connect_timeout 1s;
            grpc_next_upstream error timeout;
            # A replica lost mid-call is an HTTP 502, which gRPC clients take as a response (committed:
            # no retry). Answer it as gRPC UNAVAILABLE in a trailers-only response instead: retryable.
            error_page 502 = /grpc-unavailable;
        }}
        location = /grpc-unavailable {{
            internal;
            default_type application/grpc;
            add_header grpc-status 14 always;
            add_header grpc-message "replica unavailable" always;
            return 204;
        }}
    }}
}}
"""


@dataclass
class Call:
    request_id: str
    prompt: str
    ok: bool
    finished: float  # time.monotonic()
    tier: str = ""
    threshold: float = 0.0
    classifier_version: str = ""
    error: str = ""


@dataclass
class Load:
    """`clients` concurrent gRPC clients calling Route through `address` until stopped, each on its own
    channel with the documented retry policy; prompts cycle through `prompts` in order across clients."""

    address: str
    prompts: Sequence[str]
    clients: int = 64
    phase: str = "load"
    limit: int | None = None  # stop after this many calls in all
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Call]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            assert not self._thread.is_alive(), "the load did not stop"
        return self.calls

    def wait(self, timeout_s: float = 120) -> list[Call]:
        """Wait for a `limit`ed load to finish."""
        assert self._thread is not None
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the load did not finish"
        return self.calls

    @property
    def answered(self) -> list[Call]:
        return [call for call in list(self.calls) if call.ok]

    @property
    def failed(self) -> list[Call]:
        return [call for call in list(self.calls) if not call.ok]

    async def _run(self) -> None:
        await asyncio.gather(*(self._client(number) for number in range(self.clients)))

    async def _client(self, number: int) -> None:
        options = [("grpc.service_config", SERVICE_CONFIG.read_text()), ("grpc.enable_retries", 1)]
        async with grpc.aio.insecure_channel(self.address, options=options) as channel:
            stub = pb_grpc.RouterStub(channel)
            for i in itertools.count():
                index = next(self._counter)
                if self._stop.is_set() or (self.limit is not None and index >= self.limit):
                    return
                prompt = self.prompts[index % len(self.prompts)]
                request_id = f"{self.phase}-{number:02d}-{i:05d}"
                request = pb.RouteRequest(
                    messages=[pb.Message(role="user", content=prompt)], request_id=request_id
                )
                try:
                    response = await stub.Route(request, timeout=15)
                except grpc.aio.AioRpcError as exc:
                    call = Call(
                        request_id,
                        prompt,
                        False,
                        time.monotonic(),
                        error=f"{exc.code().name}: {exc.details()}",
                    )
                else:
                    decision = response.decision
                    call = Call(
                        request_id, prompt, True, time.monotonic(), decision.tier, decision.threshold,
                        decision.classifier_version,
                    )  # fmt: skip
                self.calls.append(call)


def shared_config(
    directory: Path, *, log_url: str, models_dir: Path, standins: Any, **routing: Any
) -> dict[str, Any]:
    """The one config every replica reads (their --address flags differ)."""
    return {
        "server": {"address": "127.0.0.1:0", "metrics_port": 0, "grace_period_s": 5},
        "tiers": {
            "small": {"model": "ollama_chat/llama3:8b", "api_base": standins.small.url, "timeout": 10},
            "large": {"model": "openai/gpt-4o", "api_base": standins.large.url, "api_key": "sk-test"},
        },
        "routing": routing or {"threshold": 0.5},
        # One onnxruntime thread each: three replicas share two cores.
        "scoring": {"threads": 1},
        "models": {"dir": str(models_dir), "active": "default", "poll_interval_s": 0.5},
        "log": {
            "url": log_url,
            "sync": "strict",
            "spill_dir": str(directory / "spill"),
            "timeout_ms": 500,
        },
    }


class ConfigMapMount:
    """A config file laid out as Kubernetes mounts a ConfigMap key, and updated the way the kubelet does:
    `config.yaml -> ..data/config.yaml`, `..data -> ..<timestamp>/`; an update writes a new timestamped
    directory, points `..data_tmp` at it and renames that over `..data` (one atomic swap), then removes the
    old directory."""

    def __init__(self, directory: Path, key: str = "config.yaml") -> None:
        self.directory = directory
        self.key = key
        self._generation = 0
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.directory / self.key

    def write(self, config: dict[str, Any], *, mtime_ns: int | None = None) -> None:
        self._generation += 1
        previous = (self.directory / "..data").resolve() if (self.directory / "..data").exists() else None
        payload = self.directory / f"..2026_01_01_00_00_{self._generation:02d}.000000001"
        payload.mkdir()
        target = payload / self.key
        target.write_text(json.dumps(config, indent=2))  # JSON is YAML
        if mtime_ns is not None:
            os.utime(target, ns=(mtime_ns, mtime_ns))
        tmp = self.directory / "..data_tmp"
        os.symlink(payload.name, tmp)
        os.replace(tmp, self.directory / "..data")
        if not self.path.is_symlink():
            os.symlink(f"..data/{self.key}", self.path)
        if previous is not None:
            shutil.rmtree(previous)
