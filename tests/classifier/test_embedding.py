"""The ONNX embedder: parity with sentence-transformers, long texts, and no torch on the serve path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.cpu import describe_cpu
from classifier.digest import sha256_file
from classifier.embedding import Embedder
from classifier.errors import ModelLoadError
from classifier.paths import SHIPPED_EMBEDDER

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = [
    "Le chat dort sur le canapé pendant que la pluie tombe.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El análisis de datos requiere paciencia y método.",
    "私は毎朝コーヒーを飲みながらニュースを読みます。",
    "这个算法的时间复杂度是多少？请详细解释。",
    "Москва — столица России, крупнейший город страны.",
    "مرحبا، كيف يمكنني مساعدتك اليوم؟",
    "नमस्ते, आप कैसे हैं?",
    "Η φιλοσοφία ξεκίνησε στην αρχαία Ελλάδα.",
    "안녕하세요, 오늘 날씨가 정말 좋네요.",
]
CODE = [
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }',
    "const add = (a, b) => a + b;\nexport default add;",
    'fn main() { let v: Vec<i32> = (0..10).collect(); println!("{:?}", v); }',
]

SHORT_STRINGS = ["yes", "no", "ok", "?", "!", "k", "hello", "thanks", "Why?", "2+2", "你好", "👍", "OK."]


def parity_corpus() -> list[str]:
    """>= 200 varied texts: short, long (past 256 tokens), code, non-English, symbols, empty."""
    texts = ["", "hi", "?", "OK.", "🙂🚀 emoji only", "a" * 5, "Turn this sentence into JSON: 'John is 35'"]
    texts += LANGUAGES + CODE
    texts += [
        f"Write a {n}-step plan to migrate a monolith with {n * 3} services to Kubernetes."
        for n in range(1, 41)
    ]
    texts += [f"What is {a} * {b}? Show your work." for a, b in zip(range(3, 43), range(17, 57), strict=True)]
    texts += [" ".join(LANGUAGES[i % len(LANGUAGES)] for i in range(k, k + 6)) for k in range(20)]
    texts += ["\n".join(CODE * k) for k in range(1, 11)]  # up to far beyond 256 tokens
    texts += [("The quick brown fox jumps over the lazy dog. " * k).strip() for k in range(1, 61, 2)]
    texts += [f"Ticket {i}: {LANGUAGES[i % 10]} Stack trace: {CODE[i % len(CODE)][:60]}" for i in range(40)]
    shared = ROOT.parent / "shared" / "data" / "routing" / "unlabeled_arena_hard.jsonl"
    if shared.is_file():
        with shared.open() as handle:
            texts += [json.loads(line)["prompt"] for _, line in zip(range(40), handle, strict=False)]
    return texts


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.from_path(SHIPPED_EMBEDDER, long_text="truncate")


@pytest.mark.export
def test_parity_with_sentence_transformers(embedder: Embedder) -> None:
    pytest.importorskip("sentence_transformers", reason="needs the [export] extra")
    from classifier.export import load_sentence_transformer

    texts = parity_corpus()
    assert len(texts) >= 200
    reference = load_sentence_transformer().encode(texts, normalize_embeddings=True, batch_size=16)
    ours = embedder.embed(texts)
    cosine = (ours * reference).sum(axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.999, f"cosine {cosine.min():.5f} on {texts[worst][:80]!r}"


def test_served_variant_parity(embedder: Embedder, default_model_dir: Path) -> None:
    """The embedder file the shipped classifier serves on this CPU (`scoring.embedder: trained`) meets the
    bar against fp32: worst cosine >= 0.99 and mean >= 0.997 on the parity corpus, batched, and worst
    >= 0.99 on short strings one by one. Neither set is in the quantiser's calibration texts
    (classifier.export.calibration_texts). Its int8 weights are 7-bit, so every x86 kernel computes the
    same integer dot products (test_int8_weights_cannot_saturate_16_bit_pair_sums); this test runs on
    whatever CPU CI has."""
    from classifier.scoring import Scorer

    served = Scorer.from_path(default_model_dir).embedder
    assert_parity_with_fp32(served.variant, embedder)


def assert_parity_with_fp32(variant: str, fp32: Embedder) -> None:
    """`variant` meets the parity bars against `fp32` on this CPU: mean cosine >= 0.997 and worst >= 0.99
    on the parity corpus, batched; worst >= 0.99 on the short strings, one by one."""
    other = Embedder.from_path(SHIPPED_EMBEDDER, variant=variant, long_text="truncate")
    texts = parity_corpus()
    cosine = (other.embed(texts) * fp32.embed(texts)).sum(axis=1)
    where = f"{variant} on {describe_cpu()}"
    assert cosine.mean() >= 0.997, f"mean cosine {cosine.mean():.4f}, {where}"
    assert cosine.min() >= 0.99, (
        f"cosine {cosine.min():.4f} on {texts[int(np.argmin(cosine))][:80]!r}, {where}"
    )
    alone = [float(other.embed([text])[0] @ fp32.embed([text])[0]) for text in SHORT_STRINGS]
    assert min(alone) >= 0.99, f"cosine {min(alone):.4f} on {SHORT_STRINGS[int(np.argmin(alone))]!r}, {where}"


def int8_weights(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    return {
        t.name: numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8
    }


def test_int8_weights_cannot_saturate_16_bit_pair_sums() -> None:
    """Without VNNI, onnxruntime's x86 kernels multiply u8 activations by s8 weights with vpmaddubsw, which
    adds each pair of products into a saturating int16. With |w| <= 64 (7-bit, reduce_range) a pair is at
    most 2 x 255 x 64 = 32640 <= 32767: no sum saturates, so AVX2, AVX-512 and VNNI kernels all compute the
    exact integer dot products. The activations are quantised to u8 by DynamicQuantizeLinear."""
    import onnx

    from classifier.export import INT8_FILE

    weights = int8_weights(SHIPPED_EMBEDDER / INT8_FILE)
    assert len(weights) >= 18  # 6 layers x (QKV, attention output, feed-forward input)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights.values()) <= 64
    graph = onnx.load(str(SHIPPED_EMBEDDER / INT8_FILE), load_external_data=False).graph
    quantisers = {node.output[0] for node in graph.node if node.op_type == "DynamicQuantizeLinear"}
    for node in graph.node:
        if node.op_type in {"MatMulInteger", "QAttention"}:
            assert node.input[0] in quantisers, node.name  # u8 activations, as DynamicQuantizeLinear makes


def test_int8_rebuild_matches_the_shipped_graph(tmp_path: Path) -> None:
    """`quantize_embedder` (no torch) rebuilds the shipped model.int8.onnx: the same graph, the same pinned
    files in embedder.json except the int8 graph's own sha256, and the same weights up to one quantisation
    level. Not the same bytes: the smoothing scales are calibrated by running the fp32 graph, whose last
    bits depend on the CPU's kernels. The rebuilt graph memory-maps the fp32 graph's model.onnx.data."""
    import onnx
    from onnx import numpy_helper

    from classifier.export import DATA_FILE, INT8_FILE, quantize_embedder

    target = tmp_path / "embedder"
    shutil.copytree(SHIPPED_EMBEDDER, target)
    (target / INT8_FILE).unlink()
    quantize_embedder(target)
    rebuilt_info = json.loads((target / "embedder.json").read_text())
    shipped_info = json.loads((SHIPPED_EMBEDDER / "embedder.json").read_text())
    rebuilt_info["files"].pop(INT8_FILE)
    shipped_info["files"].pop(INT8_FILE)
    assert rebuilt_info == shipped_info

    rebuilt = onnx.load(str(target / INT8_FILE), load_external_data=False)
    shipped = onnx.load(str(SHIPPED_EMBEDDER / INT8_FILE), load_external_data=False)
    structure = [
        [(n.op_type, n.name, list(n.input), list(n.output)) for n in model.graph.node]
        for model in (rebuilt, shipped)
    ]
    assert structure[0] == structure[1]
    assert rebuilt.metadata_props == shipped.metadata_props  # the pin of model.onnx.data's sha256
    tables = [
        {t.name: (t.data_type, list(t.dims), t.data_location) for t in model.graph.initializer}
        for model in (rebuilt, shipped)
    ]
    assert tables[0] == tables[1]
    ours, theirs = int8_weights(target / INT8_FILE), int8_weights(SHIPPED_EMBEDDER / INT8_FILE)
    for name, weight in ours.items():
        steps = np.abs(weight.astype(np.int32) - theirs[name].astype(np.int32))
        assert steps.max() <= 1 and steps.mean() <= 1e-3, name
    for tensor in rebuilt.graph.initializer:  # scales, smoothing factors, biases, fp32 weights
        if tensor.data_type == onnx.TensorProto.FLOAT and tensor.data_location != onnx.TensorProto.EXTERNAL:
            reference = next(t for t in shipped.graph.initializer if t.name == tensor.name)
            np.testing.assert_allclose(
                numpy_helper.to_array(tensor), numpy_helper.to_array(reference), rtol=1e-3, atol=1e-6
            )
    locations = {
        entry.value
        for tensor in rebuilt.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    assert locations == {DATA_FILE}
    assert not (target / f"{INT8_FILE}.data").exists()


def test_int8_full_rebuilds_byte_for_byte_from_the_int8_graph(tmp_path: Path) -> None:
    """`quantize_full` turns the shipped int8 graph into the shipped model.int8_full.onnx, byte for byte:
    weight-only quantisation reads weights, not activations, so nothing depends on the CPU. The six
    feed-forward output projections are MatMulNBits, every other node is as in the int8 graph, and the
    file reads the shared embedding tables from model.onnx.data."""
    import onnx

    from classifier.export import DATA_FILE, INT8_FILE, INT8_FULL_FILE, quantize_full

    target = tmp_path / "embedder"
    shutil.copytree(SHIPPED_EMBEDDER, target)
    (target / INT8_FULL_FILE).unlink()
    quantize_full(target)
    assert sha256_file(target / INT8_FULL_FILE) == sha256_file(SHIPPED_EMBEDDER / INT8_FULL_FILE)
    assert json.loads((target / "embedder.json").read_text()) == json.loads(
        (SHIPPED_EMBEDDER / "embedder.json").read_text()
    )
    full = onnx.load(str(target / INT8_FULL_FILE), load_external_data=False).graph
    int8 = onnx.load(str(SHIPPED_EMBEDDER / INT8_FILE), load_external_data=False).graph
    kinds = [n.op_type for n in full.node]
    assert kinds.count("MatMulNBits") == 6 and "MatMul" not in kinds
    assert [n.op_type for n in int8.node if n.op_type != "MatMul"] == [k for k in kinds if k != "MatMulNBits"]
    locations = {e.value for t in full.initializer for e in t.external_data if e.key == "location"}
    assert locations == {DATA_FILE}


def test_int8_full_meets_the_parity_bars_on_this_cpu(embedder: Embedder) -> None:
    """int8_full meets the bars `scoring.embedder: auto` gates it on, on the whole parity corpus (not only
    the start-up probes), as the served int8 file does (test_served_variant_parity)."""
    assert_parity_with_fp32("model.int8_full.onnx", embedder)


def test_smoothing_keeps_the_function(embedder: Embedder) -> None:
    """smooth_activations rescales weights and inputs (X W = (X / s)(s W)): the fp32 output is unchanged."""
    import onnx
    import onnxruntime as ort

    from classifier.export import calibration_texts, smooth_activations

    model = onnx.load(str(SHIPPED_EMBEDDER / "model.onnx"))
    smoothed = smooth_activations(model, embedder.token_windows(calibration_texts()[:20]))
    session = ort.InferenceSession(smoothed.SerializeToString(), providers=["CPUExecutionProvider"])
    texts = ["?", "Prove that there are infinitely many primes.", "東京の天気は？"]
    for text, window in zip(texts, embedder.token_windows(texts), strict=True):
        feed = {"input_ids": np.array([window]), "attention_mask": np.ones((1, len(window)), np.int64)}
        (vector,) = session.run(["sentence_embedding"], feed)
        assert float(vector[0] @ embedder.embed([text])[0]) > 0.99999, text


def test_embeddings_are_unit_length_and_batch_independent(embedder: Embedder) -> None:
    texts = ["short", "a much longer sentence about distributed consensus protocols", "日本語のテキスト"]
    batch = embedder.embed(texts)
    assert batch.shape == (3, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    singles = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_long_text_uses_head_and_tail_windows() -> None:
    head_tail = Embedder.from_path(SHIPPED_EMBEDDER, long_text="head_tail")
    truncate = Embedder.from_path(SHIPPED_EMBEDDER, long_text="truncate")
    start = "Explain the CAP theorem in depth. " * 40  # well past 256 tokens
    same_start_other_end = start + "Now write a haiku about cats and summer rain. " * 30
    first = head_tail.embed([start, same_start_other_end])
    # Truncation only sees the (identical) beginning; head+tail also sees the different ending.
    truncated = truncate.embed([start, same_start_other_end])
    assert float(truncated[0] @ truncated[1]) > 0.999
    assert float(first[0] @ first[1]) < 0.98
    # The head+tail embedding is the normalised mean of the first and last window.
    tokenizer = head_tail._tokenizer
    ids = tokenizer.encode(same_start_other_end, add_special_tokens=False).ids
    head = tokenizer.decode(ids[:254])
    tail = tokenizer.decode(ids[-254:])
    windows = truncate.embed([head, tail])
    expected = windows.sum(axis=0) / np.linalg.norm(windows.sum(axis=0))
    assert float(expected @ first[1]) > 0.995


@pytest.fixture(scope="module")
def joined() -> Embedder:
    return Embedder.from_path(SHIPPED_EMBEDDER, long_text="joined")


def test_joined_puts_head_and_tail_tokens_in_one_window(joined: Embedder) -> None:
    text = "Explain the CAP theorem in depth. " * 40 + "Now write a haiku about cats and summer rain. " * 30
    ids = joined._tokenizer.encode(text, add_special_tokens=False).ids
    assert len(ids) > 2 * 254
    windows, owners = joined._windows([text])
    assert len(windows) == 1 and owners.tolist() == [0]
    (window,) = windows
    assert len(window) == 256
    assert window[0] == joined._tokenizer.token_to_id("[CLS]")
    assert window[-1] == joined._tokenizer.token_to_id("[SEP]")
    assert window[1:128] == ids[:127]
    assert window[128:255] == ids[-127:]


def test_joined_sees_the_end_of_a_long_text(joined: Embedder) -> None:
    start = "Explain the CAP theorem in depth. " * 40
    first, second = joined.embed([start, start + "Now write a haiku about cats and summer rain. " * 30])
    assert float(first @ second) < 0.98
    np.testing.assert_allclose(np.linalg.norm(second), 1.0, atol=1e-5)


def test_joined_leaves_texts_that_fit_in_one_window_unchanged(joined: Embedder, embedder: Embedder) -> None:
    head_tail = Embedder.from_path(SHIPPED_EMBEDDER, long_text="head_tail")
    just_fits = joined._tokenizer.decode(
        joined._tokenizer.encode("word " * 400, add_special_tokens=False).ids[:254]
    )
    texts = ["", "hi", "What is 17 * 23? Show your work.", *LANGUAGES, *CODE, just_fits]
    assert len(joined._tokenizer.encode(just_fits, add_special_tokens=False).ids) == 254
    assert joined._windows(texts)[0] == head_tail._windows(texts)[0] == embedder._windows(texts)[0]
    np.testing.assert_array_equal(joined.embed(texts), head_tail.embed(texts))


def test_serving_path_never_imports_torch(default_model_dir: Path) -> None:
    """Nor the exporter: classifier.export depends on classifier.embedding, never the other way round."""
    code = (
        "import sys; from pathlib import Path; from classifier.scoring import Scorer; "
        "import router.cli.classifier_commands; "
        f"s = Scorer.from_path(Path({str(default_model_dir)!r})); s.score(['hello there']); "
        "heavy = {'torch', 'sentence_transformers', 'transformers', 'classifier.export'}; "
        "heavy = sorted(heavy & set(sys.modules)); "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_classifier_package_never_imports_router_grpc_or_litellm() -> None:
    offenders = []
    for path in (ROOT / "classifier").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and any(
                f" {name}" in stripped.replace(".", " ") for name in ("router", "grpc", "litellm")
            ):
                offenders.append(f"{path.name}: {stripped}")
    assert not offenders


@pytest.fixture()
def embedder_copy(tmp_path: Path) -> Path:
    target = tmp_path / "embedder"
    shutil.copytree(SHIPPED_EMBEDDER, target)
    return target


def test_weights_live_outside_the_graph_and_load_memory_mapped(embedder_copy: Path) -> None:
    """The shipped graph keeps its weights in model.onnx.data, page-aligned, listed in embedder.json."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo

    info = json.loads((embedder_copy / "embedder.json").read_text())
    assert {"model.onnx", "model.onnx.data"} <= set(info["files"])
    graph = onnx.load(str(embedder_copy / "model.onnx"), load_external_data=False)
    external = [t for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert any(list(t.dims) == [30522, 384] for t in external), "the word-embedding table is external"
    assert all(int(ExternalDataInfo(t).offset or 0) % 4096 == 0 for t in external)
    assert Embedder.from_path(embedder_copy).embed(["hello"]).shape == (1, 384)


def flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


# every graph reads the same tables
@pytest.mark.parametrize("variant", ["model.onnx", "model.int8.onnx", "model.int8_full.onnx"])
def test_tampered_weights_are_refused(embedder_copy: Path, variant: str) -> None:
    flip_a_byte(embedder_copy / "model.onnx.data")
    with pytest.raises(ModelLoadError, match="model.onnx.data: sha256 does not match"):
        Embedder.from_path(embedder_copy, variant=variant)


def test_weights_swapped_with_embedder_json_edited_are_refused(embedder_copy: Path) -> None:
    """Editing embedder.json to match other weights does not help: the graph pins its weights' sha256."""
    from classifier.export import sha256_file

    data = embedder_copy / "model.onnx.data"
    flip_a_byte(data)
    info_path = embedder_copy / "embedder.json"
    info = json.loads(info_path.read_text())
    info["files"]["model.onnx.data"] = sha256_file(data)
    info_path.write_text(json.dumps(info))
    with pytest.raises(ModelLoadError, match="not the weights model.onnx was exported with"):
        Embedder.from_path(embedder_copy)


def test_missing_weights_file(embedder_copy: Path) -> None:
    (embedder_copy / "model.onnx.data").unlink()
    with pytest.raises(ModelLoadError, match="missing embedder file model.onnx.data"):
        Embedder.from_path(embedder_copy)


def test_very_long_texts_tokenise_only_their_ends_and_get_the_same_windows(embedder: Embedder) -> None:
    """Past 6,144 characters only the first and last ~2,048 are tokenised (cut at whitespace); the first
    and last 254 ids, all any strategy reads, equal those of the whole text. No space: the whole text."""
    body = embedder.info.max_tokens - 2
    texts = [
        "The quick brown fox jumps over the lazy dog. " * 300,
        "def f(x):\n\treturn x * 2  # doubled\n" * 400,
        " ".join(LANGUAGES) * 40,
        "漢字" * 5000,  # no whitespace: tokenised whole
        "supercalifragilistic-expialidocious " * 400,
    ]
    for text in texts:
        whole = embedder._tokenizer.encode(text, add_special_tokens=False).ids
        ids = embedder._token_ids([text], body)[0]
        assert len(whole) > body
        assert ids[:body] == whole[:body] and ids[-body:] == whole[-body:], text[:40]
    whole = embedder._tokenizer.encode(texts[0], add_special_tokens=False).ids
    assert len(embedder._token_ids([texts[0]], body)[0]) < len(whole)  # the fast path did run
