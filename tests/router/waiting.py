"""Polling helpers for tests: a gRPC health status, a condition, whether a process still runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    """Poll `condition` every 20 ms; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    """As wait_until(), without blocking the event loop."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def wait_gone(pid: int, timeout_s: float = 10) -> None:
    """Wait until process `pid` no longer runs; AssertionError after `timeout_s`."""
    wait_until(lambda: not alive(pid), timeout_s)


async def health(channel: grpc.aio.Channel, service: str) -> int:
    """The health status of `service` on the server behind `channel`."""
    stub = health_pb2_grpc.HealthStub(channel)
    return int((await stub.Check(health_pb2.HealthCheckRequest(service=service))).status)


async def wait_health(channel: grpc.aio.Channel, service: str, status: int, timeout_s: float = 20) -> None:
    """Poll until `service` reports `status`; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while await health(channel, service) != status:
        assert time.monotonic() < deadline, f"{service} never became {status}"
        await asyncio.sleep(0.02)
