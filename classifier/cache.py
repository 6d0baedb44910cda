"""An on-disk embedding cache (npz keyed by text sha256), so retraining does not re-embed old prompts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from classifier.embedding import Embedder


def text_key(text: str) -> str:
    """sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_stamp(embedder: Embedder) -> str:
    """What a cache's vectors depend on: embedder id, its graph file's sha256 and long-text strategy."""
    return f"{embedder.info.id}:{embedder.info.files.get(embedder.variant, '')}:{embedder.long_text}"


def read_cache(cache: Path, stamp: str) -> dict[str, np.ndarray]:
    """text key -> vector from `cache`; empty when the file is missing or was made under another stamp."""
    if not cache.is_file():
        return {}
    with np.load(cache, allow_pickle=False) as stored:
        if "stamp" not in stored or str(stored["stamp"]) != stamp:
            return {}
        return dict(zip(stored["keys"].tolist(), stored["emb"], strict=True))


def write_cache(cache: Path, stamp: str, vectors: Mapping[str, np.ndarray]) -> None:
    """Write all or nothing: a temp file renamed into place."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, stamp=np.array(stamp), keys=np.array(list(vectors)), emb=np.stack(list(vectors.values())))
    tmp.replace(cache)


def embed_cached(
    embedder: Embedder, texts: Sequence[str], cache: Path | None, batch: int = 256
) -> np.ndarray:
    """Embeddings of `texts` (float32 [n, dim]); reads and extends `cache` when given.

    A cache made by another embedder file or long-text strategy is ignored and rewritten.
    """
    stamp = cache_stamp(embedder)
    known = read_cache(cache, stamp) if cache is not None else {}
    keys = [text_key(t) for t in texts]
    todo = sorted(
        {k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items(), key=lambda kv: len(kv[1])
    )
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        for (key, _), vector in zip(chunk, embedder.embed([t for _, t in chunk]), strict=True):
            known[key] = vector
    if cache is not None and todo:
        write_cache(cache, stamp, known)
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([known[k] for k in keys]).astype(np.float32)
