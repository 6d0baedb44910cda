"""Few-shot in the served router: exemplars reach the small stand-in for similar prompts only, per tenant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.config import RouterConfig, load_config
from router.requestlog import open_store
from router.rpc.server import RouterServer
from tests.router.conftest import Running, StartServer
from tests.router.fewshot.support import good, judged, record, seeded_log
from tests.router.support import Backends, config_dict, log_section, user
from tests.router.waiting import until

SHOTS = [
    (
        "Extract the price and currency as JSON: 'The kettle costs 24.99 EUR.'",
        '{"price": 24.99, "currency": "EUR"}',
    ),
    (
        "Extract the price and currency as JSON: 'Tickets are 12 USD each.'",
        '{"price": 12, "currency": "USD"}',
    ),
    (
        "Extract the price and currency as JSON: 'A coffee is 3.50 GBP here.'",
        '{"price": 3.5, "currency": "GBP"}',
    ),
]
SIMILAR = "Extract the price and currency as JSON: 'The lamp sells for 45 CHF.'"
DISSIMILAR = "Write a short poem about the autumn wind in the mountains."
FEW_SHOT = {"enabled": True, "k": 2, "min_similarity": 0.5, "max_tokens": 400}


def curated_file(tmp_path: Path, tenant: str | None = None) -> Path:
    path = tmp_path / "shots.jsonl"
    lines = [{"prompt": p, "answer": a, **({"tenant": tenant} if tenant else {})} for p, a in SHOTS]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def few_shot_config(backends: Backends, tmp_path: Path, **few_shot: Any) -> dict[str, Any]:
    raw = {**config_dict(backends, threshold=1.0), **log_section(tmp_path)}  # threshold 1: all small
    raw["tiers"]["small"]["few_shot"] = {**FEW_SHOT, **few_shot}
    return raw


async def ready(running: Running) -> None:
    fewshot = running.server.pipeline.fewshot
    assert fewshot is not None
    await until(lambda: fewshot.ready)


def sent_messages(backends: Backends) -> list[tuple[str, str]]:
    """The messages of the last call the small stand-in received."""
    chats = [r for r in backends.small.requests if r["path"] == "/api/chat"]
    return [(m["role"], m["content"]) for m in chats[-1]["body"]["messages"]]


async def complete(running: Running, prompt: str, **metadata: str) -> pb.CompleteResponse:
    messages = [pb.Message(role="system", content="Answer with JSON only."), *user(prompt)]
    return await running.stub.Complete(pb.CompleteRequest(messages=messages, metadata=metadata))


async def curated_server(
    start_server: StartServer, backends: Backends, tmp_path: Path
) -> tuple[RouterConfig, Running]:
    """A server whose small tier takes exemplars from the curated file, once they are loaded."""
    source = str(curated_file(tmp_path))
    config = RouterConfig.model_validate(few_shot_config(backends, tmp_path, source=source))
    running = await start_server(config)
    await ready(running)
    return config, running


async def test_a_similar_prompt_gets_curated_exemplars_a_dissimilar_one_does_not(
    start_server: StartServer, backends: Backends, tmp_path: Path
) -> None:
    config, running = await curated_server(start_server, backends, tmp_path)

    response = await complete(running, SIMILAR)
    assert response.decision.tier == "small"
    assert len(response.exemplar_ids) == 2 and all(i.startswith("cur-") for i in response.exemplar_ids)
    messages = sent_messages(backends)
    assert messages[0] == ("system", "Answer with JSON only.")
    assert messages[-1] == ("user", SIMILAR)
    assert [role for role, _ in messages[1:-1]] == ["user", "assistant"] * 2
    assert {content for role, content in messages[1:-1] if role == "user"} <= {p for p, _ in SHOTS}
    assert {content for role, content in messages[1:-1] if role == "assistant"} <= {a for _, a in SHOTS}

    response = await complete(running, DISSIMILAR)
    assert list(response.exemplar_ids) == []
    assert sent_messages(backends) == [("system", "Answer with JSON only."), ("user", DISSIMILAR)]

    response = await complete(running, SIMILAR, few_shot="off")  # the opt-out
    assert list(response.exemplar_ids) == []
    assert sent_messages(backends)[1:] == [("user", SIMILAR)]

    await running.server.stop(2)
    store = open_store(config.log.url)
    logged = sorted(store.iter_records(), key=lambda r: r.ts)
    store.close()
    assert [len(r.exemplar_ids) for r in logged] == [2, 0, 0]


async def test_the_large_tier_never_gets_exemplars_and_streams_report_them(
    start_server: StartServer, backends: Backends, tmp_path: Path
) -> None:
    config, running = await curated_server(start_server, backends, tmp_path)
    forced = await running.stub.Complete(pb.CompleteRequest(messages=user(SIMILAR), force_tier="large"))
    assert forced.decision.tier == "large" and list(forced.exemplar_ids) == []
    assert [m["content"] for m in backends.large.requests[-1]["body"]["messages"]] == [SIMILAR]

    chunks = [c async for c in running.stub.CompleteStream(pb.CompleteRequest(messages=user(SIMILAR)))]
    assert len(chunks[0].exemplar_ids) == 2
    chats = [r for r in backends.small.requests if r["path"] == "/api/chat"]
    assert len(chats[-1]["body"]["messages"]) == 5, [r["path"] for r in backends.small.requests]


async def test_logged_approved_answers_serve_their_own_tenant_only(
    start_server: StartServer, backends: Backends, tmp_path: Path
) -> None:
    # The periodic refresh is not waited for: the test runs one refresh itself (refresh_s is out of reach).
    raw = few_shot_config(backends, tmp_path, source="logs", refresh_s=3600)
    log_path = Path(raw["log"]["url"].removeprefix("sqlite:///"))
    log_path.parent.mkdir(parents=True)
    seeded_log(
        log_path,
        [
            (record(1, SHOTS[0][0], SHOTS[0][1]), good()),
            (record(2, SHOTS[1][0], SHOTS[1][1], tier="small"), judged(0)),  # judged; no large answer stored
            (record(3, SHOTS[2][0], SHOTS[2][1]), judged(0)),
        ],
    ).close()
    running = await start_server(RouterConfig.model_validate(raw))
    await ready(running)

    acme = await complete(running, SIMILAR, tenant="acme")
    assert set(acme.exemplar_ids) == {"log-req-1", "log-req-3"}
    assert ("assistant", SHOTS[0][1]) in sent_messages(backends)
    assert list((await complete(running, DISSIMILAR, tenant="acme")).exemplar_ids) == []
    assert len(sent_messages(backends)) == 2
    for metadata in ({"tenant": "globex"}, {}):
        other = await complete(running, SIMILAR, **metadata)
        assert list(other.exemplar_ids) == []
        assert len(sent_messages(backends)) == 2

    # A newly approved answer is picked up by the next refresh; the request's own log row never is.
    again = await complete(running, SHOTS[2][0], tenant="acme")
    assert "log-req-3" not in again.exemplar_ids
    store = open_store(raw["log"]["url"])
    store.write_batch(
        [
            record(
                4,
                SIMILAR.replace("45 CHF", "46 CHF"),
                '{"price": 46, "currency": "CHF"}',
                metadata={"tenant": "globex"},
            )
        ]
    )
    assert store.set_label("req-4", good())
    store.close()
    fewshot = running.server.pipeline.fewshot
    assert fewshot is not None
    await fewshot.refresh()
    assert fewshot.store is not None and len(fewshot.store) == 3
    globex = await complete(running, SIMILAR, tenant="globex")
    assert list(globex.exemplar_ids) == ["log-req-4"]


async def test_few_shot_follows_a_live_config_reload(backends: Backends, tmp_path: Path, scorer: Any) -> None:
    from router.config.reload import ConfigSource
    from router.rpc.server import create_server

    raw = few_shot_config(backends, tmp_path, source=str(curated_file(tmp_path)), enabled=False)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(raw))
    server, port = create_server(load_config(path), scorer=scorer, source=ConfigSource(path))
    server.reloader.poll_interval_s = 0.05  # type: ignore[union-attr]
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await _reload_scenario(server, channel, raw, path, backends)
    finally:
        await server.stop(0)


async def _reload_scenario(
    server: RouterServer, channel: grpc.aio.Channel, raw: dict[str, Any], path: Path, backends: Backends
) -> None:
    from router._proto import router_pb2_grpc as pb_grpc

    stub = pb_grpc.RouterStub(channel)
    await until(lambda: server.backend.ready, timeout_s=30)
    first = await stub.Complete(pb.CompleteRequest(messages=user(SIMILAR)))
    assert list(first.exemplar_ids) == []

    raw["tiers"]["small"]["few_shot"]["enabled"] = True
    path.write_text(json.dumps(raw))
    fewshot = server.pipeline.fewshot
    assert fewshot is not None
    await until(lambda: fewshot.ready)
    second = await stub.Complete(pb.CompleteRequest(messages=user(SIMILAR)))
    assert len(second.exemplar_ids) == 2

    raw["tiers"]["small"]["few_shot"]["k"] = 1  # per-request knob: no rebuild needed
    path.write_text(json.dumps(raw))
    await until(lambda: server.pipeline.config.tiers.small.few_shot.k == 1)  # type: ignore[union-attr]
    third = await stub.Complete(pb.CompleteRequest(messages=user(SIMILAR)))
    assert len(third.exemplar_ids) == 1
    assert "few_shot" not in json.dumps(backends.small.requests[-1]["body"])


def test_few_shot_is_validated_and_never_reaches_litellm(backends: Backends, tmp_path: Path) -> None:
    from router.errors import ConfigError

    raw = few_shot_config(backends, tmp_path, source="shots.jsonl")
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(raw))
    small = load_config(path).tiers.small
    assert small.few_shot is not None and small.few_shot.files == (tmp_path / "shots.jsonl",)
    assert "few_shot" not in small.litellm_kwargs()
    for bad_settings, message in (({"k": 0}, "k"), ({"typo": 1}, "typo"), ({"source": []}, "source")):
        raw["tiers"]["small"]["few_shot"] = {**FEW_SHOT, **bad_settings}
        path.write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match=f"tiers.small.few_shot.{message}"):
            load_config(path)
    raw["tiers"]["small"]["few_shot"] = FEW_SHOT
    raw["tiers"]["large"]["few_shot"] = FEW_SHOT
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="few_shot applies only to tiers.small"):
        load_config(path)
