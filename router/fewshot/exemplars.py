"""The exemplar store: (id, prompt, answer, embedding, source, quality, tenant) and brute-force cosine top-k.

Tenant scopes (see `ExemplarStore.search`): an exemplar with a tenant is served only to requests of that
tenant. A log-derived exemplar without a tenant is served only to requests without a tenant. A curated
exemplar without a tenant is the operator's own text and is shared with every request. So one tenant's
logged traffic never reaches another tenant's prompt, nor a tenant-less one.

Search is a brute-force matrix-vector product over unit float32 vectors (384-d: 1.5 KB per exemplar).
Measured by benchmarks/bench_fewshot.py on 2 busy cores: ~0.1 ms at 1k exemplars, ~0.7 ms at 10k, ~30 ms at
100k (memory-bound: 146 MB read per query). From 20k exemplars the router runs the search off the event loop
(router.fewshot.runtime.OFF_LOOP_EXEMPLARS). Switch to an ANN index (HNSW: hnswlib or faiss) when a tenant's
scope passes ~50k exemplars, or when the search's share of a small-tier call's latency starts to matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from router.domain import Message

Source = Literal["curated", "logs"]
# The budget is an estimate, made conservative: English prose in BPE tokenizers (SmolLM2, GPT-style) averages
# ~4 characters per token, but numbers, JSON and symbols are denser (measured on the price-extraction
# exemplars of benchmarks/bench_fewshot.py: 3 characters per token under-counted SmolLM2's tokens by ~6%),
# so 2.5 is counted; each chat turn adds ~5 template tokens (<|im_start|>role ... <|im_end|>).
CHARS_PER_TOKEN = 2.5
TURN_OVERHEAD_TOKENS = 5
# Top-k looks at this many best candidates, so exclusions and budget skips can still fill k.
CANDIDATE_FACTOR = 4


def estimate_tokens(text: str) -> int:
    """A conservative token count for `text` (see CHARS_PER_TOKEN)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Exemplar:
    """One worked example. `quality` in [0, 1]; `tenant` None: see the module's scope rules."""

    id: str
    prompt: str
    answer: str
    source: Source
    quality: float = 1.0
    tenant: str | None = None
    request_id: str | None = None  # the logged request it came from (source "logs")
    # An exemplar of a task (request metadata task=...) is offered only to requests of that task that ask
    # for the same schema (its name; None: free text). Without a task it is offered as its tenant allows.
    task: str | None = None
    schema_name: str | None = None

    def fits(self, task: str | None, schema_name: str | None) -> bool:
        """May a request of `task` asking for `schema_name` be shown this exemplar?"""
        return self.task is None or (self.task == task and self.schema_name == schema_name)

    @property
    def tokens(self) -> int:
        """Estimated tokens this exemplar adds as a user turn plus an assistant turn."""
        return estimate_tokens(self.prompt) + estimate_tokens(self.answer) + 2 * TURN_OVERHEAD_TOKENS

    @property
    def shared(self) -> bool:
        """Served to every tenant: a curated exemplar without a tenant."""
        return self.source == "curated" and self.tenant is None


@dataclass(frozen=True)
class Match:
    """An exemplar and its cosine similarity in [-1, 1] to the request."""

    exemplar: Exemplar
    similarity: float


@dataclass(frozen=True)
class Selection:
    """The exemplars injected into one request, most similar first; `tokens` is their estimate."""

    matches: tuple[Match, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(match.exemplar.id for match in self.matches)

    @property
    def tokens(self) -> int:
        return sum(match.exemplar.tokens for match in self.matches)

    def __bool__(self) -> bool:
        return bool(self.matches)


@dataclass(frozen=True)
class _Pool:
    exemplars: tuple[Exemplar, ...]
    matrix: np.ndarray  # float32 [n, dim], unit rows


@dataclass(frozen=True)
class Query:
    """What a request asks of the store: its embedding, tenant, and what it must not get back."""

    embedding: np.ndarray
    tenant: str | None
    k: int
    min_similarity: float
    max_tokens: int
    exclude_prompts: frozenset[str] = frozenset()
    exclude_request_id: str | None = None
    task: str | None = None  # the request's task (metadata task)
    schema_name: str | None = None  # the request's json_schema name (None: no schema)


@dataclass(frozen=True)
class ExemplarStore:
    """Immutable per-tenant pools of exemplars with their unit embeddings. Build with `from_embedded`."""

    pools: dict[str | None, _Pool] = field(default_factory=dict)
    shared: _Pool | None = None
    dim: int = 0

    @classmethod
    def from_embedded(cls, exemplars: Sequence[Exemplar], embeddings: np.ndarray) -> ExemplarStore:
        """Group `exemplars` (row i embedded as `embeddings[i]`, unit float32) into their scopes."""
        if len(exemplars) != len(embeddings):
            raise ValueError(f"{len(exemplars)} exemplars but {len(embeddings)} embeddings")
        matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
        scopes: dict[str | None, list[int]] = {}
        shared: list[int] = []
        for row, exemplar in enumerate(exemplars):
            (shared if exemplar.shared else scopes.setdefault(exemplar.tenant, [])).append(row)

        def pool(rows: list[int]) -> _Pool:
            return _Pool(tuple(exemplars[row] for row in rows), matrix[rows])

        return cls(
            pools={tenant: pool(rows) for tenant, rows in scopes.items()},
            shared=pool(shared) if shared else None,
            dim=int(matrix.shape[1]) if matrix.ndim == 2 else 0,
        )

    def __len__(self) -> int:
        pools = [*self.pools.values(), *([self.shared] if self.shared else [])]
        return sum(len(pool.exemplars) for pool in pools)

    def visible(self, tenant: str | None) -> tuple[Exemplar, ...]:
        """Every exemplar a request of `tenant` may be shown."""
        return tuple(exemplar for pool in self._pools_for(tenant) for exemplar in pool.exemplars)

    def search(self, query: Query) -> Selection:
        """The `k` most similar visible exemplars at or above `min_similarity`, most similar first.

        Skipped: an exemplar whose prompt is in `exclude_prompts` or that came from `exclude_request_id`, one
        of another task or schema (Exemplar.fits),
        a second exemplar with the same prompt, and one that would take the total over `max_tokens`.
        """
        if query.embedding.shape != (self.dim,):
            return Selection()
        candidates: list[Match] = []
        for pool in self._pools_for(query.tenant):
            candidates.extend(_top(pool, query))
        candidates.sort(key=lambda match: -match.similarity)
        chosen: list[Match] = []
        seen: set[str] = set(query.exclude_prompts)
        tokens = 0
        for match in candidates:
            exemplar = match.exemplar
            if exemplar.prompt in seen or (
                query.exclude_request_id is not None and exemplar.request_id == query.exclude_request_id
            ):
                continue
            if not exemplar.fits(query.task, query.schema_name):
                continue
            if tokens + exemplar.tokens > query.max_tokens:
                continue
            seen.add(exemplar.prompt)
            tokens += exemplar.tokens
            chosen.append(match)
            if len(chosen) == query.k:
                break
        return Selection(tuple(chosen))

    def _pools_for(self, tenant: str | None) -> list[_Pool]:
        pools = [self.pools[tenant]] if tenant in self.pools else []
        return pools + ([self.shared] if self.shared is not None else [])


def _top(pool: _Pool, query: Query) -> list[Match]:
    """The best `CANDIDATE_FACTOR * k` rows of `pool` at or above the similarity floor."""
    # einsum, not `@`: OpenBLAS threads its matrix-vector product, and on a busy 2-core machine those threads
    # made a 10k-row search 20x slower (16 ms instead of 0.8 ms; benchmarks/bench_fewshot.py).
    similarities = np.einsum("ij,j->i", pool.matrix, query.embedding.astype(np.float32, copy=False))
    rows = np.flatnonzero(similarities >= query.min_similarity)
    limit = CANDIDATE_FACTOR * query.k + 4
    if len(rows) > limit:
        rows = rows[np.argpartition(-similarities[rows], limit - 1)[:limit]]
    return [Match(pool.exemplars[row], float(similarities[row])) for row in rows]


def inject(messages: Sequence[Message], selection: Selection) -> tuple[Message, ...]:
    """`messages` with the selection as prior user/assistant turns after the leading system messages.

    The most similar exemplar comes last, next to the request's own prompt.
    """
    if not selection:
        return tuple(messages)
    head = 0
    while head < len(messages) and messages[head].role == "system":
        head += 1
    turns: list[Message] = []
    for match in reversed(selection.matches):
        turns += [Message("user", match.exemplar.prompt), Message("assistant", match.exemplar.answer)]
    return (*messages[:head], *turns, *messages[head:])
