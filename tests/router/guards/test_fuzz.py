"""Garbage on the wire: random gRPC payloads, oversized messages, raw HTTP/2 junk; the server stays up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import Callable

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig
from router.config.guards import LimitsSettings
from tests.router.conftest import StartServer
from tests.router.guards.helpers import with_server
from tests.router.support import KeyedScorer, user
from tests.router.waiting import SERVING, health

METHODS = ["Route", "Complete", "CompleteStream", "Feedback", "NoSuchMethod"]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CLEAN = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.OK,
}


async def _raw_junk(port: int, payload: bytes) -> None:
    """Open a TCP connection, write `payload`, read whatever comes back for a moment, close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader.read(65536), 0.2)
    writer.close()
    await writer.wait_closed()


async def test_random_payloads_and_frames_get_clean_errors_and_the_server_keeps_serving(
    start_server: StartServer, make_config: Callable[..., RouterConfig], caplog: pytest.LogCaptureFixture
) -> None:
    limits = LimitsSettings(max_message_bytes=64 * 1024)
    server = await start_server(
        with_server(make_config(fallback=False), limits=limits),
        with_scorer=KeyedScorer(),
        wait_completion=False,
    )
    rng = random.Random(7)
    codes: set[grpc.StatusCode] = set()
    for index in range(120):
        method = METHODS[index % len(METHODS)]
        size = rng.choice([0, 1, 7, 64, 1000, 70_000]) if index % 10 else 300_000
        payload = rng.randbytes(size)
        if method == "CompleteStream":
            call = server.channel.unary_stream(f"/rightsize.v1.Router/{method}")(payload, timeout=2)
            try:
                async for _ in call:
                    pass
                codes.add(await call.code())
            except grpc.aio.AioRpcError as exc:
                codes.add(exc.code())
            continue
        try:
            await server.channel.unary_unary(f"/rightsize.v1.Router/{method}")(payload, timeout=2)
            codes.add(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as exc:
            codes.add(exc.code())
    assert codes <= CLEAN, codes
    assert {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    } <= codes
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]  # no crash traces

    port = int(server.address.rsplit(":", 1)[1])
    junk = [
        rng.randbytes(200),
        PREFACE + rng.randbytes(500),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        # A SETTINGS frame with a length that lies, then a HEADERS frame on stream 0.
        PREFACE + struct.pack(">I", 0xFFFFFF)[1:] + b"\x04\x00\x00\x00\x00\x00" + b"\x00" * 32,
        PREFACE + b"\x00\x00\x05\x01\x04\x00\x00\x00\x00" + rng.randbytes(5),
    ]
    await asyncio.gather(*(_raw_junk(port, payload) for payload in junk * 4))

    assert await health(server.channel, "") == SERVING
    oversized = pb.RouteRequest(messages=user("x" * 100_000))
    try:
        await server.stub.Route(oversized)
        raise AssertionError("an oversized message was accepted")
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await server.stub.Route(pb.RouteRequest(messages=user("hi")))).decision.tier == "small"
