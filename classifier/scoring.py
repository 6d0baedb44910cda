"""The serving-time scorer: texts -> calibrated probability in [0, 1] that the small model falls short."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast, get_args

import numpy as np

from classifier.artifacts import Manifest, open_head, read_manifest, resolve_embedder
from classifier.autotune import Candidates, Tuning, prepare, thread_candidates
from classifier.embedding import VARIANT_FILES, Embedder, LongText, read_embedder_info
from classifier.errors import ModelLoadError
from classifier.features import FEATURE_NAMES, FEATURES_VERSION, structural_features


class Scorer:
    """Embedder + structural features + the ONNX head of one model directory.

    Thread-safe: onnxruntime sessions may be run from several threads at once.
    """

    def __init__(self, embedder: Embedder, head_session: Any, manifest: Manifest, model_dir: Path):
        self.embedder = embedder
        self._head = head_session
        self._head_input = head_session.get_inputs()[0].name
        self.manifest = manifest
        self.model_dir = model_dir
        self.tuning: Tuning | None = None  # what was measured when the file or threads were "auto"
        self._untimed: Candidates | None = None  # loaded with time_later: finish_tuning() chooses

    @classmethod
    def from_path(
        cls,
        model_dir: Path,
        *,
        threads: int | Literal["auto"] | None = None,
        embedder_file: str | Literal["auto"] | None = None,
        time_later: bool = False,
    ) -> Scorer:
        """Load and verify a model directory (manifest, head sha256, embedder sha256 and id).

        `embedder_file` picks another file of the same embedder (e.g. `model.int8.onnx`, listed with its
        sha256 in `embedder.json`) instead of the one the head was trained with. "auto" for either (or
        both) measures the candidates on this CPU and keeps the fastest that meets the parity bars
        (classifier.autotune; the choice is in `scorer.tuning`). With `time_later`, the candidates are
        loaded and parity-checked here but timed by `finish_tuning()`, e.g. once a concurrent import no
        longer shares the cores; until then the scorer embeds with the trained file (or the first eligible).
        """
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        head = manifest.head
        if head.features_version != FEATURES_VERSION or tuple(head.features) != FEATURE_NAMES:
            raise ModelLoadError(
                f"{model_dir}: the head expects features v{head.features_version} {head.features}, "
                f"this build computes v{FEATURES_VERSION}"
            )
        if head.inputs != manifest.embedder.dim + len(FEATURE_NAMES):
            raise ModelLoadError(
                f"{model_dir}: head has {head.inputs} inputs, embedder+features give "
                f"{manifest.embedder.dim + len(FEATURE_NAMES)}"
            )
        embedder_dir = resolve_embedder(model_dir, manifest.embedder)
        if manifest.long_text not in get_args(LongText):
            raise ModelLoadError(
                f"{model_dir}: the head was trained with long_text={manifest.long_text!r}, this build "
                f"knows {', '.join(get_args(LongText))}"
            )
        long_text = cast(LongText, manifest.long_text)
        tuning = None
        if "auto" in (threads, embedder_file):
            listed = read_embedder_info(embedder_dir).files
            variants = (
                tuple(f for f in VARIANT_FILES.values() if f in listed)
                if embedder_file == "auto"
                else (embedder_file or manifest.embedder.file,)
            )
            counts = thread_candidates() if threads == "auto" else (threads or min(2, os.cpu_count() or 1),)
            candidates = prepare(
                embedder_dir,
                variants=variants,
                threads=counts,
                trained=manifest.embedder.file,
                long_text=long_text,
            )
            untimed = candidates if time_later else None
            embedder, tuning = (candidates.provisional, None) if time_later else candidates.choose()
        else:
            untimed = None
            variant = embedder_file or manifest.embedder.file
            embedder = Embedder.from_path(
                embedder_dir, variant=variant, threads=cast(int | None, threads), long_text=long_text
            )
        session = open_head(model_dir, manifest)
        scorer = cls(embedder, session, manifest, model_dir)
        scorer.tuning = tuning
        scorer._untimed = untimed
        return scorer

    @property
    def tuning_pending(self) -> bool:
        """Loaded with `time_later` and `finish_tuning()` not yet called."""
        return self._untimed is not None

    def finish_tuning(self) -> Tuning | None:
        """Time the candidates loaded with `time_later` and embed with the fastest from now on; None when
        nothing was left to time. Call it before serving: a call in flight keeps the embedder it began on."""
        if self._untimed is None:
            return None
        self.embedder, self.tuning = self._untimed.choose()
        self._untimed = None
        return self.tuning

    @property
    def version(self) -> str:
        """The model's content-hash version id."""
        return self.manifest.version

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts)] in [0, 1]: estimated P(small model is not good enough)."""
        return self.score_embedded(self.embedder.embed(texts), texts)

    def score_embedded(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Score texts whose embeddings are already computed (lets callers reuse them, e.g. for few-shot)."""
        if len(texts) == 0:
            return np.zeros(0, dtype=np.float32)
        inputs = head_inputs(embeddings, texts)
        probabilities = self._head.run(None, {self._head_input: inputs})[-1]
        return np.clip(np.asarray(probabilities, dtype=np.float32)[:, 1], 0.0, 1.0)


def head_inputs(embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """The head's input matrix: embedding columns, then the structural features."""
    return np.hstack([embeddings.astype(np.float32), structural_features(texts)]).astype(np.float32)
