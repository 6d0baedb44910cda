"""Helpers of the learning tests: tiny trained models, labelled logs and config files."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from classifier.data import Example
from classifier.training import Recipe
from router.requestlog import Label, LogRecord, RequestLogStore, prompt_digest
from tests.classifier.synthetic import rows
from tests.router.support import Backends, config_dict

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def embed_into(cache: Path, texts: list[str], recipe: Recipe | None = None) -> Any:
    """Embeddings of `texts` with the shipped embedder as `recipe` (default: the shipped recipe) embeds
    them, read from and added to the npz `cache`."""
    from classifier.cache import embed_cached
    from classifier.embedding import VARIANT_FILES, Embedder
    from classifier.paths import SHIPPED_EMBEDDER

    recipe = recipe or Recipe()
    variant = VARIANT_FILES[recipe.embedder]
    return embed_cached(
        Embedder.from_path(SHIPPED_EMBEDDER, variant=variant, long_text=recipe.long_text), texts, cache
    )


def train_tiny(out: Path, examples: list[Example], cache: Path, recipe: Recipe | None = None) -> str:
    """Train a model directory from `examples` with the shipped embedder; returns its version."""
    from classifier.paths import SHIPPED_EMBEDDER
    from classifier.training import train_model

    recipe = recipe or Recipe()
    texts = sorted({e.text for e in examples})
    return train_model(
        examples, embed_into(cache, texts, recipe), texts, out, SHIPPED_EMBEDDER, recipe=recipe
    ).version


def synthetic_examples(count: int, seed: int, *, invert: bool = False) -> list[Example]:
    examples = []
    for row in rows(count, seed=seed):
        small_ok = int(str(row["small_ok"]))
        examples.append(Example(text=str(row["prompt"]), small_ok=1 - small_ok if invert else small_ok))
    return examples


def labelled_log(store: RequestLogStore, examples: list[Example]) -> None:
    """One logged small-tier Complete per example, labelled by feedback with its small_ok."""
    records = [
        LogRecord(request_id=f"log-{i:04d}", ts=T0 + timedelta(seconds=i), rpc="Complete",
                  prompt_sha256=prompt_digest(e.text), prompt=e.text, tier="small", model="ollama_chat/x",
                  classifier_version="old", total_ms=10.0)
        for i, e in enumerate(examples)
    ]  # fmt: skip
    store.write_batch(records)
    for record, example in zip(records, examples, strict=True):
        rating = "GOOD" if example.small_ok else "BAD"
        store.set_label(record.request_id, Label(small_ok=example.small_ok, source="feedback", rating=rating))


def write_config(path: Path, backends: Backends, **sections: Any) -> Path:
    """A server config file (JSON is YAML) pointing at the stand-ins, with extra top-level sections."""
    raw = {**config_dict(backends), **sections}
    path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return path


def with_weight(examples: list[Example], weight: float) -> list[Example]:
    return [replace(e, weight=weight) for e in examples]
