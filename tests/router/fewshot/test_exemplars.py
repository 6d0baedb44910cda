"""The exemplar store on fixed vectors: neighbours, tenant scopes, the token budget, exclusions, injection."""

from __future__ import annotations

import numpy as np
import pytest

from router.domain import Message
from router.fewshot import Exemplar, ExemplarStore, Query, Selection, estimate_tokens, inject


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def store_of(rows: list[tuple[Exemplar, np.ndarray]]) -> ExemplarStore:
    return ExemplarStore.from_embedded([e for e, _ in rows], np.stack([v for _, v in rows]))


def ex(
    name: str,
    tenant: str | None = None,
    source: str = "curated",
    answer: str = "a",
    request_id: str | None = None,
) -> Exemplar:
    return Exemplar(
        id=name,
        prompt=f"prompt {name}",
        answer=answer,
        source=source,  # type: ignore[arg-type]
        tenant=tenant,
        request_id=request_id,
    )


def query(vector: np.ndarray, tenant: str | None = None, **changes: object) -> Query:
    values: dict[str, object] = dict(
        embedding=vector, tenant=tenant, k=3, min_similarity=0.0, max_tokens=10_000
    )
    values.update(changes)
    return Query(**values)  # type: ignore[arg-type]


@pytest.fixture
def fixed() -> ExemplarStore:
    return store_of(
        [
            (ex("east"), unit(1, 0, 0)),
            (ex("north-east"), unit(1, 1, 0)),
            (ex("north"), unit(0, 1, 0)),
            (ex("up"), unit(0, 0, 1)),
            (ex("west"), unit(-1, 0, 0)),
        ]
    )


def test_neighbours_are_the_k_most_similar_most_similar_first(fixed: ExemplarStore) -> None:
    selection = fixed.search(query(unit(1, 0.2, 0), k=2))
    assert selection.ids == ("east", "north-east")
    similarities = [m.similarity for m in selection.matches]
    assert similarities == sorted(similarities, reverse=True)
    assert similarities[0] == pytest.approx(float(unit(1, 0.2, 0) @ unit(1, 0, 0)), abs=1e-6)


def test_the_similarity_floor_drops_weak_neighbours(fixed: ExemplarStore) -> None:
    assert fixed.search(query(unit(1, 0.2, 0), k=5, min_similarity=0.6)).ids == ("east", "north-east")
    assert fixed.search(query(unit(-1, -1, -1), min_similarity=0.99)).ids == ()


def test_a_brute_force_search_agrees_with_a_sort_on_random_vectors() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = ExemplarStore.from_embedded([ex(str(i)) for i in range(500)], vectors)
    probe = vectors[42] + 0.1 * vectors[7]
    probe /= np.linalg.norm(probe)
    expected = [str(i) for i in np.argsort(-(vectors @ probe))[:5]]
    assert list(store.search(query(probe, k=5, min_similarity=-1.0)).ids) == expected


def test_a_tenant_sees_its_own_and_shared_exemplars_never_another_tenants() -> None:
    store = store_of(
        [
            (ex("acme-log", tenant="acme", source="logs"), unit(1, 0)),
            (ex("globex-log", tenant="globex", source="logs"), unit(1, 0.01)),
            (ex("anonymous-log", tenant=None, source="logs"), unit(1, 0.02)),
            (ex("acme-file", tenant="acme"), unit(1, 0.03)),
            (ex("shared-file", tenant=None), unit(1, 0.04)),
        ]
    )
    probe = unit(1, 0)
    assert set(store.search(query(probe, "acme", k=10)).ids) == {"acme-log", "acme-file", "shared-file"}
    assert set(store.search(query(probe, "globex", k=10)).ids) == {"globex-log", "shared-file"}
    assert set(store.search(query(probe, None, k=10)).ids) == {"anonymous-log", "shared-file"}
    assert set(store.search(query(probe, "initech", k=10)).ids) == {"shared-file"}
    assert {e.id for e in store.visible("globex")} == {"globex-log", "shared-file"}


def test_the_token_budget_is_never_exceeded() -> None:
    long_answer = "word " * 300  # ~500 estimated tokens
    store = store_of(
        [
            (ex("long", answer=long_answer), unit(1, 0)),
            (ex("short-1"), unit(1, 0.1)),
            (ex("short-2"), unit(1, 0.2)),
        ]
    )
    per_short = ex("short-1").tokens
    selection = store.search(query(unit(1, 0), k=3, max_tokens=2 * per_short))
    assert selection.ids == ("short-1", "short-2")  # the most similar one does not fit; the next ones do
    assert selection.tokens <= 2 * per_short
    assert store.search(query(unit(1, 0), k=3, max_tokens=per_short - 1)).ids == ()
    everything = store.search(query(unit(1, 0), k=3, max_tokens=10_000))
    assert everything.ids == ("long", "short-1", "short-2")
    assert everything.tokens == sum(e.tokens for e in store.visible(None))


def test_token_estimate_is_conservative_for_english() -> None:
    text = "Extract the price and currency from this sentence into JSON."
    assert estimate_tokens(text) >= len(text.split())
    assert estimate_tokens("") == 0


def test_the_requests_own_prompt_and_own_log_row_are_never_exemplars() -> None:
    own = Exemplar(id="log-req-1", prompt="what is 2+2?", answer="4", source="logs", request_id="req-1")
    twin = Exemplar(id="log-req-2", prompt="what is 2+2?", answer="four", source="logs", request_id="req-2")
    other = Exemplar(id="log-req-3", prompt="what is 3+3?", answer="6", source="logs", request_id="req-3")
    store = store_of([(own, unit(1, 0)), (twin, unit(1, 0)), (other, unit(1, 0.1))])
    by_text = store.search(query(unit(1, 0), exclude_prompts=frozenset({"what is 2+2?"})))
    assert by_text.ids == ("log-req-3",)
    by_id = store.search(query(unit(1, 0), exclude_request_id="req-1"))
    assert "log-req-1" not in by_id.ids
    assert by_id.ids[0] == "log-req-2" and len(by_id.ids) == 2  # one exemplar per distinct prompt


def test_a_query_from_another_embedder_dimension_finds_nothing(fixed: ExemplarStore) -> None:
    assert fixed.search(query(unit(1, 0))).ids == ()


def test_exemplars_go_after_the_system_prompt_most_similar_last() -> None:
    store = store_of([(ex("near"), unit(1, 0)), (ex("far"), unit(1, 1))])
    selection = store.search(query(unit(1, 0.1)))
    messages = (Message("system", "be brief"), Message("user", "the question"))
    injected = inject(messages, selection)
    assert [(m.role, m.content) for m in injected] == [
        ("system", "be brief"),
        ("user", "prompt far"),
        ("assistant", "a"),
        ("user", "prompt near"),
        ("assistant", "a"),
        ("user", "the question"),
    ]
    assert inject(messages[1:], selection)[0] == Message("user", "prompt far")
    assert inject(messages, Selection()) == messages


def test_an_empty_store_finds_nothing() -> None:
    store = ExemplarStore.from_embedded([], np.zeros((0, 3), dtype=np.float32))
    assert len(store) == 0
    assert store.search(query(unit(1, 0, 0))).ids == ()


def test_the_public_api_is_what_all_exports() -> None:
    import router.fewshot as fewshot

    assert sorted(fewshot.__all__) == sorted([
        "Exemplar", "ExemplarStore", "FewShotSettings", "Match", "Query", "Selection",
        "estimate_tokens", "inject",
    ])  # fmt: skip
    assert all(hasattr(fewshot, name) for name in fewshot.__all__)
