"""What operators see: health per service, reflection, Prometheus metrics, the Feedback placeholder."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from router._proto import router_pb2 as pb
from router.config import RouterConfig, with_server
from router.errors import RouterError
from router.rpc.server import COMPLETION_HEALTH_SERVICE, ROUTER_SERVICE, create_server
from tests.router.conftest import Running, StartServer
from tests.router.support import Backends, KeyedScorer, user

MakeConfig = Callable[..., RouterConfig]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_of(server: Running, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(server.channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service))).status


async def test_health_is_serving_for_route_and_for_complete_once_litellm_is_loaded(router: Running) -> None:
    assert await health_of(router, "") == SERVING
    assert await health_of(router, ROUTER_SERVICE) == SERVING
    for _ in range(100):  # the watcher task flips it right after the import finished
        if await health_of(router, COMPLETION_HEALTH_SERVICE) == SERVING:
            break
        await asyncio.sleep(0.02)
    assert await health_of(router, COMPLETION_HEALTH_SERVICE) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health_of(router, "no.such.Service")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_turns_not_serving_when_the_drain_starts(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(), with_scorer=KeyedScorer())
    await server.server.health.enter_graceful_shutdown()  # the first step of RouterServer.stop()
    assert await health_of(server, "") == NOT_SERVING
    assert await health_of(server, ROUTER_SERVICE) == NOT_SERVING


async def test_reflection_lists_and_describes_the_router(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(), with_scorer=KeyedScorer(), wait_completion=False)
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="rightsize.v1.Router"),
    ]
    responses = [response async for response in stub.ServerReflectionInfo(iter(requests))]
    services = {service.name for service in responses[0].list_services_response.service}
    assert {"rightsize.v1.Router", "grpc.health.v1.Health"} <= services
    serialized = responses[1].file_descriptor_response.file_descriptor_proto[0]
    file = descriptor_pb2.FileDescriptorProto.FromString(serialized)
    assert file.package == "rightsize.v1"
    assert {m.name for m in file.service[0].method} == {"Route", "Complete", "CompleteStream", "Feedback"}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


async def test_metrics_are_exposed_over_http(start_server: StartServer, make_config: MakeConfig) -> None:
    scorer = KeyedScorer({"hard": 0.9}, default=0.1)
    server = await start_server(make_config(threshold=0.5), with_scorer=scorer)
    await server.stub.Route(pb.RouteRequest(messages=user("hard")))
    await server.stub.Complete(pb.CompleteRequest(messages=user("easy one")))
    await server.stub.Complete(pb.CompleteRequest(messages=user("hard")))
    with pytest.raises(grpc.aio.AioRpcError):
        await server.stub.Route(pb.RouteRequest())
    text = await asyncio.to_thread(scrape, server.metrics_url)
    expected = [
        'rightsize_decisions_total{rule="global",tier="large"} 2.0',
        'rightsize_decisions_total{rule="global",tier="small"} 1.0',
        "rightsize_classifier_seconds_count 3.0",
        'rightsize_completion_seconds_count{tier="small"} 1.0',
        'rightsize_completion_seconds_count{tier="large"} 1.0',
        'rightsize_tokens_total{direction="prompt",tier="small"} 2.0',
        'rightsize_tokens_total{direction="completion",tier="large"} 6.0',
        'rightsize_cost_usd_total{tier="small"} 0.0',
        'rightsize_requests_total{code="OK",method="Complete"} 2.0',
        'rightsize_requests_total{code="INVALID_ARGUMENT",method="Route"} 1.0',
        'rightsize_ready{component="completion"} 1.0',
    ]
    missing = [line for line in expected if line not in text]
    assert missing == []
    registry = server.server.metrics.registry
    large_cost = registry.get_sample_value("rightsize_cost_usd_total", {"tier": "large"})
    assert large_cost == pytest.approx(1 * 1e-6 + 6 * 2e-6)  # "hard": 1 word in, 6 out, configured price


async def test_fallbacks_and_backend_errors_are_counted_by_kind(
    start_server: StartServer, make_config: MakeConfig, backends: Backends
) -> None:
    backends.small.kill()
    server = await start_server(make_config(), with_scorer=KeyedScorer(default=0.1))
    await server.stub.Complete(pb.CompleteRequest(messages=user("x")))
    registry = server.server.metrics.registry
    assert registry.get_sample_value("rightsize_fallbacks_total", {"kind": "connection"}) == 1
    labels = {"tier": "small", "kind": "connection"}
    assert registry.get_sample_value("rightsize_backend_errors_total", labels) == 1


async def test_each_server_has_its_own_registry(start_server: StartServer, make_config: MakeConfig) -> None:
    first = await start_server(make_config(), with_scorer=KeyedScorer(), wait_completion=False)
    second = await start_server(make_config(), with_scorer=KeyedScorer(), wait_completion=False)
    await first.stub.Route(pb.RouteRequest(messages=user("x")))
    labels = {"tier": "small", "rule": "global"}
    assert first.server.metrics.registry.get_sample_value("rightsize_decisions_total", labels) == 1
    assert second.server.metrics.registry.get_sample_value("rightsize_decisions_total", labels) is None


async def test_feedback_for_an_unknown_request_is_not_found(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(), with_scorer=KeyedScorer(), wait_completion=False)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await server.stub.Feedback(pb.FeedbackRequest(request_id="r", rating=pb.GOOD))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_busy_port_is_a_clear_start_up_error(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    first = await start_server(make_config(), with_scorer=KeyedScorer(), wait_completion=False)
    with pytest.raises(RouterError, match=f"cannot listen on {first.address}"):
        create_server(with_server(make_config(), address=first.address), scorer=KeyedScorer())
    metrics_port = first.server.metrics_port
    server, _ = create_server(with_server(make_config(), metrics_port=metrics_port), scorer=KeyedScorer())
    with pytest.raises(RouterError, match=f"cannot serve metrics on 127.0.0.1:{metrics_port}"):
        await server.start()
    await server.stop(0)
