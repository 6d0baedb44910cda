"""The serving-time answer-quality head: (prompt, answer, signals) -> P(small answer is good) in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np

from classifier.answer.inputs import (
    ANSWER_FEATURE_NAMES,
    ANSWER_FEATURES_VERSION,
    COSINE_FEATURE,
    LOGPROB_FEATURES,
    AnswerInput,
    head_inputs,
)
from classifier.answer.training import HEAD_KIND, feature_columns, select_inputs
from classifier.artifacts import Manifest, open_head, read_manifest, resolve_embedder
from classifier.embedding import Embedder, LongText
from classifier.errors import ModelLoadError


class AnswerScorer:
    """Embedder + the ONNX answer head of one model directory. Thread-safe, like classifier.scoring.Scorer."""

    def __init__(self, embedder: Embedder, head_session: Any, manifest: Manifest, model_dir: Path):
        self.embedder = embedder
        self._head = head_session
        self._head_input = head_session.get_inputs()[0].name
        self.manifest = manifest
        self.model_dir = model_dir
        self._embeddings = manifest.head.inputs != len(manifest.head.features)
        self._columns = feature_columns(manifest.head.features)
        # A head that reads neither embedding nor their cosine never runs the embedder (microseconds).
        self.embeds = self._embeddings or COSINE_FEATURE in manifest.head.features

    @classmethod
    def from_path(
        cls,
        model_dir: Path,
        *,
        embedder: Embedder | None = None,
        threads: int | None = None,
        own_file_if_other: bool = False,
    ) -> AnswerScorer:
        """Load and verify an answer-head directory (manifest, head sha256, embedder id and sha256).

        Pass the router's already-loaded `embedder` to share it. It must be the same embedder (id). A head
        that runs it (embeddings or their cosine among its inputs) needs the very file it was trained on
        (same sha256): another file of it is refused with ModelLoadError, or with `own_file_if_other` the
        head loads the trained file for itself. A head that never runs it shares any file of it.
        """
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        head = manifest.head
        if head.kind != HEAD_KIND:
            raise ModelLoadError(f"{model_dir}: not an answer-quality head (kind {head.kind!r})")
        unknown = [name for name in head.features if name not in ANSWER_FEATURE_NAMES]
        if head.features_version > ANSWER_FEATURES_VERSION or unknown or not head.features:
            raise ModelLoadError(
                f"{model_dir}: the head expects answer features v{head.features_version} {head.features}, "
                f"this build computes v{ANSWER_FEATURES_VERSION} {list(ANSWER_FEATURE_NAMES)}"
            )
        dim, scalars = manifest.embedder.dim, len(head.features)
        if head.inputs not in (scalars, 2 * dim + scalars):
            raise ModelLoadError(f"{model_dir}: head has {head.inputs} inputs, expected {2 * dim + scalars}")
        embeds = head.inputs != scalars or COSINE_FEATURE in head.features
        if embedder is not None:
            if embedder.info.id != manifest.embedder.id:
                raise ModelLoadError(
                    f"{model_dir}: the answer head was trained on {manifest.embedder.id}; the embedder "
                    f"passed in is {embedder.info.id}"
                )
            other_file = embedder.info.files.get(embedder.variant) != manifest.embedder.sha256
            if embeds and other_file and not own_file_if_other:
                raise ModelLoadError(
                    f"{model_dir}: the answer head was trained on {manifest.embedder.id} "
                    f"({manifest.embedder.file}) and reads its embeddings; the embedder passed in is "
                    f"{embedder.variant}"
                )
            if embeds and other_file:
                embedder = None
        if embedder is None:
            if manifest.long_text not in get_args(LongText):
                raise ModelLoadError(f"{model_dir}: unknown long_text {manifest.long_text!r}")
            embedder_dir = resolve_embedder(model_dir, manifest.embedder)
            embedder = Embedder.from_path(
                embedder_dir,
                variant=manifest.embedder.file,
                threads=threads,
                long_text=cast(LongText, manifest.long_text),
            )
        session = open_head(model_dir, manifest, "answer head")
        return cls(embedder, session, manifest, model_dir)

    @property
    def uses_sample(self) -> bool:
        """Whether the head reads the self-consistency features (then pass AnswerInput.sample)."""
        return any(name.startswith("sample_") for name in self.manifest.head.features)

    @property
    def uses_logprobs(self) -> bool:
        """Whether the head reads token log-probability features (an answer without them is masked)."""
        return bool(LOGPROB_FEATURES & set(self.manifest.head.features))

    @property
    def version(self) -> str:
        """The head's content-hash version id."""
        return self.manifest.version

    def score(self, items: Sequence[AnswerInput]) -> np.ndarray:
        """float32 [len(items)] in [0, 1]: P(the small answer is good enough)."""
        if not items:
            return np.zeros(0, dtype=np.float32)
        prompts = self._embed([item.prompt for item in items])
        return self.score_embedded(prompts, items)

    def score_one(self, item: AnswerInput, prompt_embedding: np.ndarray | None = None) -> float:
        """P(good) in [0, 1] of one answer; pass the routing embedding of its prompt to skip re-embedding."""
        if prompt_embedding is None:
            return float(self.score([item])[0])
        return float(self.score_embedded(prompt_embedding.reshape(1, -1), [item])[0])

    def score_embedded(self, prompt_embeddings: np.ndarray, items: Sequence[AnswerInput]) -> np.ndarray:
        """Like `score`, with the prompts' embeddings already computed (the router's routing vectors)."""
        if not items:
            return np.zeros(0, dtype=np.float32)
        answers = self._embed([item.answer for item in items])
        inputs = head_inputs(prompt_embeddings.astype(np.float32), answers, items)
        inputs = select_inputs(inputs, self._embeddings, self.embedder.dim, self._columns)
        probabilities = self._head.run(None, {self._head_input: inputs})[-1]
        return np.clip(np.asarray(probabilities, dtype=np.float32)[:, 1], 0.0, 1.0)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """The texts' unit embeddings, or zero rows when the head reads neither them nor their cosine."""
        if self.embeds:
            return self.embedder.embed(texts)
        return np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
