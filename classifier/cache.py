"""An on-disk embedding cache (npz keyed by text sha256), so retraining does not re-embed old prompts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.embedding import Embedder


def text_key(text: str) -> str:
    """sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_cached(
    embedder: Embedder, texts: Sequence[str], cache: Path | None, batch: int = 256
) -> np.ndarray:
    """Embeddings of `texts` (float32 [n, dim]); reads and extends `cache` when given.

    A cache made by another embedder file or long-text strategy is ignored and rewritten.
    """
    stamp = f"{embedder.info.id}:{embedder.info.files.get('model.onnx', '')}:{embedder.long_text}"
    known: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if "stamp" in stored and str(stored["stamp"]) == stamp:
                known = dict(zip(stored["keys"].tolist(), stored["emb"], strict=True))
    keys = [text_key(t) for t in texts]
    todo = sorted(
        {k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items(), key=lambda kv: len(kv[1])
    )
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        for (key, _), vector in zip(chunk, embedder.embed([t for _, t in chunk]), strict=True):
            known[key] = vector
    if cache is not None and todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, stamp=np.array(stamp), keys=np.array(list(known)), emb=np.stack(list(known.values())))
        tmp.replace(cache)
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([known[k] for k in keys]).astype(np.float32)
