"""The official `openai` Python SDK, sync, async and streaming, against the door over the stand-ins."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from router._proto import router_pb2 as pb
from tests.router.http.conftest import Door
from tests.router.support import HARD_PROMPT, LARGE_REPLY, SMALL_REPLY, Backends

EASY = "What is the capital of France?"


def sync_client(door: Door) -> openai.OpenAI:
    return openai.OpenAI(base_url=door.base_url, api_key="unused", max_retries=0)


def async_client(door: Door, api_key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=door.base_url, api_key=api_key, max_retries=0)


async def test_sync_client_gets_the_routed_answer_with_the_decision_in_headers(door: Door) -> None:
    client = sync_client(door)

    def call() -> Any:
        return client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": EASY}]
        )

    raw = await asyncio.to_thread(call)  # the sync SDK blocks: keep the server's loop free
    client.close()
    completion = raw.parse()
    assert completion.choices[0].message.content == SMALL_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "ollama_chat/llama3:8b"
    assert completion.id == raw.headers["x-rightsize-request-id"]
    assert raw.headers["x-rightsize-tier"] == "small"
    assert float(raw.headers["x-rightsize-score"]) < float(raw.headers["x-rightsize-threshold"]) == 0.5
    assert raw.headers["x-rightsize-reason"].startswith("global threshold")
    assert raw.headers["x-rightsize-classifier-version"]
    assert raw.headers["x-rightsize-fallback"] == "false"
    assert raw.headers["x-rightsize-escalated"] == "false"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == len(SMALL_REPLY.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_async_client_forces_tiers_by_name_and_by_model_id(door: Door) -> None:
    async with async_client(door) as client:
        large = await client.chat.completions.create(
            model="large", messages=[{"role": "user", "content": EASY}]
        )
        by_id = await client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": EASY}]
        )
        hard = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": HARD_PROMPT}]
        )
    assert large.choices[0].message.content == LARGE_REPLY
    assert by_id.choices[0].message.content == LARGE_REPLY and by_id.model == "openai/gpt-4o"
    assert hard.model == "openai/gpt-4o"  # the classifier sends the hard prompt to the large tier


async def test_generation_parameters_and_user_reach_the_tier_and_the_log(
    door: Door, backends: Backends
) -> None:
    async with async_client(door) as client:
        completion = await client.chat.completions.create(
            model="large",
            messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": EASY}],
            max_completion_tokens=17,
            temperature=0.25,
            top_p=0.5,
            stop=["END"],
            user="alice",
            metadata={"task": "qa"},
        )
    sent = backends.large.requests[-1]["body"]
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 17
    assert (sent["temperature"], sent["top_p"], sent["stop"]) == (0.25, 0.5, ["END"])
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    log = door.running.server.request_log
    await asyncio.to_thread(log.writer.wait_logged, completion.id, 5)
    record = log.store.get(completion.id)
    assert record is not None and dict(record.metadata) == {"task": "qa", "user": "alice"}


async def test_streaming_with_usage_matches_the_unary_answer(door: Door) -> None:
    async with async_client(door) as client:
        stream = await client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": EASY}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == SMALL_REPLY
    assert {c.id for c in chunks} == {chunks[0].id} and len(chunks[0].id) == 32
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(SMALL_REPLY.split())
    assert chunks[0].model == "ollama_chat/llama3:8b"


async def test_sync_streaming_without_usage(door: Door) -> None:
    client = sync_client(door)

    def call() -> tuple[Any, list[Any]]:
        with client.chat.completions.with_streaming_response.create(
            model="small", messages=[{"role": "user", "content": EASY}], stream=True
        ) as response:
            return response.headers, list(response.parse())

    headers, chunks = await asyncio.to_thread(call)
    client.close()
    assert headers["x-rightsize-tier"] == "small"
    assert headers["content-type"].startswith("text/event-stream")
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == SMALL_REPLY
    assert all(c.usage is None for c in chunks)


async def test_feedback_rates_an_answer_given_through_the_door(door: Door) -> None:
    async with async_client(door) as client:
        completion = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": EASY}]
        )
        reply = await client.post(
            "/feedback",
            body={"request_id": completion.id, "rating": "bad", "score": 0.2, "comment": "too short"},
            cast_to=object,
        )
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.post("/feedback", body={"request_id": "nope", "rating": "good"}, cast_to=object)
    assert reply == {"request_id": completion.id, "recorded": True}
    assert "no logged request" in unknown.value.message
    record = door.running.server.request_log.store.get(completion.id)  # where gRPC's Feedback puts it
    assert record is not None and (record.feedback_rating, record.feedback_comment) == ("BAD", "too short")


async def test_models_lists_the_aliases_and_the_tiers_model_ids(door: Door) -> None:
    async with async_client(door) as client:
        models = [model.id async for model in client.models.list()]
    assert models == ["auto", "small", "large", "ollama_chat/llama3:8b", "openai/gpt-4o"]


async def test_both_doors_share_the_request_log_and_the_metric(door: Door) -> None:
    async with async_client(door) as client:
        completion = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": EASY}]
        )
    await door.running.stub.Complete(pb.CompleteRequest(messages=[pb.Message(role="user", content=EASY)]))
    server = door.running.server
    await asyncio.to_thread(server.request_log.writer.wait_logged, completion.id, 5)
    record = server.request_log.store.get(completion.id)
    assert record is not None and (record.tier, record.rpc) == ("small", "Complete")
    assert server.metrics.requests.labels("Complete", "OK")._value.get() == 2
