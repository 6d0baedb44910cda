"""The ONNX sentence embedder: text -> unit 384-d vectors with onnxruntime + tokenizers (no torch)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from classifier.digest import sha256_file
from classifier.errors import GraphLoadError, ModelLoadError

LongText = Literal["head_tail", "joined", "truncate"]
EmbedderVariant = Literal["fp32", "int8", "int8_full"]
# The files of an exported embedder: fp32 (parity with sentence-transformers >= 0.999) and int8
# (classifier.export.quantize_embedder, 7-bit weights: cosine to fp32 >= 0.99 on every x86 CPU, about 20 MB
# less memory).
VARIANT_FILES: dict[EmbedderVariant, str] = {
    "fp32": "model.onnx",
    "int8": "model.int8.onnx",
    # int8 with its fp32 feed-forward output projections weight-only quantised too (export.quantize_full)
    "int8_full": "model.int8_full.onnx",
}
DATA_FILE = "model.onnx.data"  # the memory-mapped embedding tables, shared by every graph file
DATA_SHA_KEY = "rightsize.external_data_sha256"  # the graphs' metadata key pinning DATA_FILE's sha256
_BATCH_TOKENS = 2048  # padded tokens per onnxruntime run: less padding and less memory than 8192 (measured)


@dataclass(frozen=True)
class EmbedderInfo:
    """What `embedder.json` says about an exported embedder."""

    id: str
    dim: int
    max_tokens: int
    files: dict[str, str]  # file name -> sha256


def session_options(threads: int | None = None) -> Any:
    """onnxruntime options for small CPU batches: all graph optimisations, sequential, no arena."""
    # onnxruntime on Linux may send usage telemetry; the service runs offline and must not phone home.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # The arena keeps the largest batch's activations for the process's life (+52 MB after one batch of
    # 32 prompts, measured); without it memory goes back to malloc, at no measurable cost in latency.
    options.enable_cpu_mem_arena = False
    return options


class Embedder:
    """Embeds texts with the exported all-MiniLM-L6-v2.

    Texts longer than the model's window (256 tokens) are not cut: with `long_text="head_tail"` (the
    default) the first and the last window are embedded and their mean, re-normalised, is the text's
    embedding. `"joined"` embeds one window holding the text's first 127 and last 127 tokens (half the
    work of head_tail on long texts). `"truncate"` keeps only the first window, as sentence-transformers
    does. Texts that fit in one window are embedded the same way under every strategy.
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        info: EmbedderInfo,
        long_text: LongText = "head_tail",
        variant: str = "model.onnx",
    ):
        self._session = session
        self._tokenizer = tokenizer
        self.info = info
        self.long_text = long_text
        self.variant = variant  # the graph file (VARIANT_FILES)
        self._cls = tokenizer.token_to_id("[CLS]")
        self._sep = tokenizer.token_to_id("[SEP]")

    @classmethod
    def from_path(
        cls,
        directory: Path,
        *,
        variant: str = "model.onnx",
        threads: int | None = None,
        long_text: LongText = "head_tail",
        verify: bool = True,
    ) -> Embedder:
        """Load `directory/{variant, tokenizer.json, embedder.json}`; with `verify`, check the sha256s."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        info = read_embedder_info(directory)
        model_path = directory / variant
        if variant not in info.files:
            raise ModelLoadError(f"{directory}: embedder.json lists no file {variant!r}")
        data_file = DATA_FILE  # the embedding tables, memory-mapped, when the graphs keep them outside
        names = [variant, *([data_file] if data_file in info.files else []), "tokenizer.json"]
        for name in names:
            if not (directory / name).is_file():
                raise ModelLoadError(f"{directory}: missing embedder file {name}")
        # Hashing ~90 MB takes about 0.1 s: it runs on other threads (hashlib releases the GIL) while
        # onnxruntime builds the session, and a mismatch still refuses the embedder.
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="verify") as pool:
            digests = {name: pool.submit(sha256_file, directory / name) for name in names} if verify else {}
            try:
                tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
                session = ort.InferenceSession(
                    str(model_path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime and tokenizers raise bare RuntimeError/Exception
                raise GraphLoadError(f"{directory}: cannot load the embedder: {exc}") from exc
            for name, digest in digests.items():
                if digest.result() != info.files[name]:
                    raise ModelLoadError(
                        f"{directory / name}: sha256 does not match embedder.json (corrupt or replaced)"
                    )
        pinned = session.get_modelmeta().custom_metadata_map.get(DATA_SHA_KEY)
        if verify and pinned is not None and pinned != info.files.get(data_file, "unlisted"):
            raise ModelLoadError(f"{directory / data_file}: not the weights {variant} was exported with")
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(session, tokenizer, info, long_text, variant)

    @property
    def dim(self) -> int:
        return self.info.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim], each row L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        windows, owners = self._windows(texts)
        vectors = self._run(windows)
        if len(windows) == len(texts):
            return vectors
        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(pooled, owners, vectors)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def token_windows(self, texts: Sequence[str]) -> list[list[int]]:
        """The token-id windows ([CLS] ... [SEP]) the graph runs on for `texts`, as `embed` builds them."""
        return self._windows(texts)[0]

    def _windows(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token-id windows ([CLS] ... [SEP]) and, for each, the index of the text it belongs to."""
        body = self.info.max_tokens - 2
        windows: list[list[int]] = []
        owners: list[int] = []
        for index, ids in enumerate(self._token_ids(texts, body)):
            pieces = [ids[:body]]
            if len(ids) > body and self.long_text == "head_tail":
                pieces.append(ids[-body:])
            elif len(ids) > body and self.long_text == "joined":
                head = body // 2
                pieces = [ids[:head] + ids[-(body - head) :]]
            for piece in pieces:
                windows.append([self._cls, *piece, self._sep])
                owners.append(index)
        return windows, np.asarray(owners, dtype=np.int64)

    def _token_ids(self, texts: Sequence[str], body: int) -> list[list[int]]:
        """Each text's token ids (no special tokens), or, for a text far longer than the window, its
        first and last stretches' ids back to back: every strategy reads only the first and last `body`.

        Tokenising a 10,000-character prompt whole took 3 ms. BERT's tokenisation is local between
        whitespace (the normaliser works per character, words split at whitespace), so a stretch cut at a
        space tokenises exactly as it does inside the text; a stretch that yields no more than `body`
        tokens, or has no space to cut at, falls back to the whole text.
        """
        out: list[list[int]] = [[] for _ in texts]
        whole: list[int] = []
        for index, text in enumerate(texts):
            ends = _ends(text) if len(text) > 3 * _END_CHARS else None
            if ends is None:
                whole.append(index)
                continue
            head, tail = self._tokenizer.encode_batch(list(ends), add_special_tokens=False)
            if len(head.ids) > body and len(tail.ids) > body:
                out[index] = [*head.ids, *tail.ids]
            else:
                whole.append(index)
        encodings = self._tokenizer.encode_batch([texts[i] for i in whole], add_special_tokens=False)
        for index, encoding in zip(whole, encodings, strict=True):
            out[index] = encoding.ids
        return out

    def _run(self, windows: list[list[int]]) -> np.ndarray:
        """Embed windows in length-sorted batches, so short ones are not padded to the longest."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        out = np.empty((len(windows), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            width = len(windows[order[start]])
            stop = start
            # Grow the batch while the padded size (count x longest) stays within the token budget.
            while stop < len(order) and (stop - start + 1) * len(windows[order[stop]]) <= max(
                _BATCH_TOKENS, width
            ):
                stop += 1
            batch = order[start:stop]
            longest = len(windows[batch[-1]])
            ids = np.zeros((len(batch), longest), dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, window_index in enumerate(batch):
                window = windows[window_index]
                ids[row, : len(window)] = window
                mask[row, : len(window)] = 1
            result = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            out[batch] = result
            start = stop
        return out


_END_CHARS = 2048  # characters tokenised at each end of a long text (about 450 English tokens)


def _ends(text: str) -> tuple[str, str] | None:
    """The first and last ~_END_CHARS characters of `text`, each cut at a space or newline (None without)."""
    head_cut = max(text.rfind(" ", 0, _END_CHARS), text.rfind("\n", 0, _END_CHARS))
    tail_from = len(text) - _END_CHARS
    starts = [i for i in (text.find(" ", tail_from), text.find("\n", tail_from)) if i >= 0]
    if head_cut <= 0 or not starts:
        return None
    return text[:head_cut], text[min(starts) :]


def read_embedder_info(directory: Path) -> EmbedderInfo:
    """Parse `directory/embedder.json`, with a clear error when it is missing or malformed."""
    path = directory / "embedder.json"
    try:
        raw = json.loads(path.read_text())
        return EmbedderInfo(
            id=str(raw["id"]),
            dim=int(raw["dim"]),
            max_tokens=int(raw["max_tokens"]),
            files=dict(raw["files"]),
        )
    except FileNotFoundError as exc:
        raise ModelLoadError(f"no embedder at {directory} (missing embedder.json)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: malformed embedder.json: {exc}") from exc
