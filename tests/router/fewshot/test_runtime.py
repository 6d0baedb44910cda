"""The few-shot runtime: cheap rebuilds (cached embeddings), no stale exemplars after a source change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from router.domain import Message, Request
from router.fewshot.runtime import FewShot
from router.fewshot.settings import FewShotSettings
from router.requestlog import LogSettings


class HashEmbedder:
    """Unit vectors from the text's words (similar texts share words); counts what it embeds."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += list(texts)
        rows = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                rows[row, sum(map(ord, word)) % 64] += 1
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def write(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "answer": f"answer to {p}"}) + "\n" for p in prompts))
    return path


def request(text: str, **metadata: str) -> Request:
    return Request(messages=(Message("user", text),), request_id="r1", metadata=metadata)


async def test_a_rebuild_embeds_only_new_prompts_and_a_new_source_hides_the_old_store(
    tmp_path: Path,
) -> None:
    embedder = HashEmbedder()
    first = write(tmp_path / "a.jsonl", ["convert ten euros to json", "convert five dollars to json"])
    settings = FewShotSettings(enabled=True, k=2, min_similarity=0.3, source=(str(first),))
    fewshot = FewShot(lambda: settings, lambda: embedder, LogSettings(url=f"sqlite:///{tmp_path / 'l.db'}"))
    await fewshot.refresh()
    assert fewshot.ready and len(embedder.embedded) == 2
    probe = "convert seven euros to json"
    selection = fewshot.select(request(probe), embedder.embed([probe])[0], probe)
    assert selection.ids and selection.matches[0].exemplar.prompt == "convert ten euros to json"
    assert fewshot.select(request(probe, few_shot="off"), embedder.embed([probe])[0], probe).ids == ()

    write(first, ["convert ten euros to json", "convert five dollars to json", "convert a yen to json"])
    embedder.embedded.clear()
    await fewshot.refresh()
    assert embedder.embedded == ["convert a yen to json"]  # the cache kept the two known prompts

    second = write(tmp_path / "b.jsonl", ["summarise the meeting notes"])
    settings = FewShotSettings(enabled=True, k=2, min_similarity=0.3, source=(str(second),))
    assert not fewshot.ready
    assert fewshot.select(request(probe), embedder.embed([probe])[0], probe).ids == ()  # never the old file's
    await fewshot.refresh()
    assert fewshot.ready and {e.prompt for e in fewshot.store.visible(None)} == {  # type: ignore[union-attr]
        "summarise the meeting notes"
    }


async def test_a_broken_file_serves_nothing_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "bad.jsonl"
    broken.write_text('{"prompt": "no answer"}\n')
    settings = FewShotSettings(enabled=True, source=(str(broken),))
    fewshot = FewShot(lambda: settings, HashEmbedder, LogSettings(url=f"sqlite:///{tmp_path / 'l.db'}"))
    await fewshot.refresh()
    assert fewshot.store is None and not fewshot.ready
    assert "line 1" in caplog.text


async def test_a_large_store_is_searched_off_the_event_loop_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from router.fewshot import runtime

    embedder = HashEmbedder()
    path = write(tmp_path / "a.jsonl", ["convert ten euros to json", "convert five dollars to json"])
    settings = FewShotSettings(enabled=True, k=2, min_similarity=0.3, source=(str(path),))
    fewshot = FewShot(lambda: settings, lambda: embedder, LogSettings(url=f"sqlite:///{tmp_path / 'l.db'}"))
    await fewshot.refresh()
    probe = "convert seven euros to json"
    vector = embedder.embed([probe])[0]
    inline = fewshot.select(request(probe), vector, probe)
    threads: list[str] = []
    original = fewshot.select

    def recording_select(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(fewshot, "select", recording_select)
    assert not fewshot.slow
    monkeypatch.setattr(runtime, "OFF_LOOP_EXEMPLARS", 2)
    assert fewshot.slow
    assert (await fewshot.aselect(request(probe), vector, probe)).ids == inline.ids
    assert threads and threads[0] != threading.main_thread().name
