"""Choosing the embedder file and threads by measuring on this CPU (classifier.autotune)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from classifier.autotune import (
    FP32_FILE,
    PROBE_PROMPTS,
    PROBE_SHORT,
    cpu_flags,
    parity_failure,
    pick,
    probe,
    thread_candidates,
    tune,
)
from classifier.embedding import VARIANT_FILES, Embedder
from classifier.paths import SHIPPED_EMBEDDER


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_the_parity_gate_passes_the_same_embeddings_and_refuses_drifted_ones() -> None:
    rng = np.random.default_rng(0)
    reference = (
        _unit(rng.normal(size=(len(PROBE_PROMPTS), 384))),
        _unit(rng.normal(size=(len(PROBE_SHORT), 384))),
    )
    assert parity_failure(reference, reference) is None
    # Cosine about 0.97 to the reference: what an int8 graph gave on an AVX2-only CPU (issue 14).
    drifted = tuple(_unit(side + 0.25 * _unit(rng.normal(size=side.shape))) for side in reference)
    why = parity_failure(drifted, reference)  # type: ignore[arg-type]
    assert why is not None and "mean 0.9" in why
    # One short string off is enough: the worst bar covers the strings embedded one by one.
    one_off = (reference[0], np.vstack([drifted[1][:1], reference[1][1:]]))
    assert parity_failure(one_off, reference) is not None


def test_auto_serves_the_fastest_eligible_candidate_and_remembers_it() -> None:
    variants = tuple(VARIANT_FILES.values())
    threads = thread_candidates()
    assert 1 in threads
    embedder, tuning = tune(
        SHIPPED_EMBEDDER, variants=variants, threads=threads, trained="model.int8.onnx", long_text="joined"
    )
    assert (embedder.variant, tuning.variant) == (tuning.variant, tuning.variant)
    assert tuning.threads in threads
    timed = {name.rsplit("/", 1)[0] for name in tuning.timings_ms}
    assert timed | set(tuning.ineligible) == set(variants) and not timed & set(tuning.ineligible)
    assert f"{tuning.variant}/{tuning.threads}" in tuning.timings_ms
    assert set(tuning.batch_ms) == set(tuning.timings_ms)  # both shapes timed on every candidate
    assert all(tuning.batch_ms[name] > tuning.timings_ms[name] for name in tuning.batch_ms)
    assert set(tuning.cpu_flags) == set(cpu_flags())
    reference = probe(Embedder.from_path(SHIPPED_EMBEDDER, variant=FP32_FILE, long_text="joined"))
    assert parity_failure(probe(embedder), reference) is None
    assert "measured on this CPU" in tuning.summary()
    again, cached = tune(
        SHIPPED_EMBEDDER, variants=variants, threads=threads, trained="model.int8.onnx", long_text="joined"
    )
    assert cached.cached and (cached.variant, cached.threads) == (tuning.variant, tuning.threads)
    assert again.variant == tuning.variant


def test_the_choice_weighs_a_lone_prompt_and_a_batch_alike() -> None:
    """What the two shapes measured (ms): on an AVX2-only EPYC int8_full ties int8 on a short prompt and
    runs batches slower, so int8 serves; with VNNI it wins both, and serves."""
    int8, full, fp32 = ("model.int8.onnx", 2), ("model.int8_full.onnx", 2), (FP32_FILE, 2)
    avx2_short = {fp32: 4.9, int8: 3.4, full: 3.2}
    avx2_batch = {fp32: 40.4, int8: 26.8, full: 34.9}
    assert pick(avx2_short, avx2_batch, trained="model.int8.onnx") == int8
    # Trained on int8_full's file instead, the same timings keep int8: 6 % faster on the short prompt
    # does not pay for 30 % slower batches.
    assert pick(avx2_short, avx2_batch, trained="model.int8_full.onnx") == int8
    vnni_short = {fp32: 3.9, int8: 3.5, full: 2.8}
    vnni_batch = {fp32: 52.0, int8: 34.6, full: 32.2}
    assert pick(vnni_short, vnni_batch, trained="model.int8.onnx") == full
    # Within 5 % over both shapes the trained file's own embeddings win.
    close_short, close_batch = {int8: 3.5, full: 3.4}, {int8: 34.6, full: 34.0}
    assert pick(close_short, close_batch, trained="model.int8.onnx") == int8
    # Threads are candidates like files: one thread, slower alone and in batches, loses.
    threads_short, threads_batch = (
        {int8: 3.4, ("model.int8.onnx", 1): 5.1},
        {int8: 27.0, ("model.int8.onnx", 1): 44.0},
    )
    assert pick(threads_short, threads_batch, trained="model.int8.onnx") == int8


def test_a_file_named_in_the_config_is_served_whatever_the_timings() -> None:
    embedder, tuning = tune(
        SHIPPED_EMBEDDER, variants=(FP32_FILE,), threads=(1, 2), trained="model.int8.onnx", long_text="joined"
    )
    assert embedder.variant == FP32_FILE and tuning.threads in (1, 2) and not tuning.ineligible


def test_a_file_this_onnxruntime_cannot_run_is_left_out_of_the_choice(tmp_path: Path) -> None:
    """An embedder file whose graph onnxruntime cannot build (here an operator no runtime has; in the
    field int8_full's MatMulNBits on an older onnxruntime) is ineligible, and the others are chosen
    among; named on its own, it is refused with the reason."""
    import onnx
    from onnx import TensorProto, helper

    from classifier.digest import sha256_file
    from classifier.errors import GraphLoadError

    directory = tmp_path / "embedder"
    shutil.copytree(SHIPPED_EMBEDDER, directory)
    full = VARIANT_FILES["int8_full"]
    node = helper.make_node("NoSuchOp", ["input_ids"], ["sentence_embedding"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "unrunnable",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, None])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, [1, 384])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(model, str(directory / full))
    info = json.loads((directory / "embedder.json").read_text())
    info["files"][full] = sha256_file(directory / full)
    (directory / "embedder.json").write_text(json.dumps(info))

    variants = tuple(VARIANT_FILES.values())
    embedder, tuning = tune(
        directory, variants=variants, threads=(1,), trained="model.int8.onnx", long_text="joined"
    )
    assert tuning.ineligible[full].startswith("onnxruntime cannot load it")
    assert embedder.variant in ("model.onnx", "model.int8.onnx")
    assert f"{full} not eligible: onnxruntime cannot load it" in tuning.summary()
    with pytest.raises(GraphLoadError, match="cannot load the embedder"):
        tune(directory, variants=(full,), threads=(1,), trained="model.int8.onnx", long_text="joined")


def test_a_scorer_loaded_to_time_later_embeds_with_the_trained_file_until_it_is_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `rightsize serve` does: the files load and pass parity during LiteLLM's import, the timing
    runs after it (finish_tuning), and from then on the scorer embeds with the file chosen."""
    import classifier.autotune
    from classifier.paths import DEFAULT_MODEL_DIR
    from classifier.scoring import Scorer

    monkeypatch.setattr(classifier.autotune, "_CHOSEN", {})  # an earlier test's choice is not remembered
    scorer = Scorer.from_path(DEFAULT_MODEL_DIR, embedder_file="auto", time_later=True)
    assert scorer.tuning_pending and scorer.tuning is None
    assert scorer.embedder.variant == scorer.manifest.embedder.file  # provisional: the trained file
    before = scorer.score(["What is the capital of France?"])
    tuning = scorer.finish_tuning()
    assert tuning is not None and not tuning.cached and not scorer.tuning_pending
    assert scorer.tuning is tuning and scorer.embedder.variant == tuning.variant
    assert len(tuning.timings_ms) + len(tuning.ineligible) == len(VARIANT_FILES)
    assert scorer.finish_tuning() is None
    after = scorer.score(["What is the capital of France?"])
    assert abs(float(after[0]) - float(before[0])) < 0.02  # files that met the parity bars score alike
