"""Model directories on disk: the manifest, its verification, and where the embedder is found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from classifier.digest import sha256_file
from classifier.embedding import read_embedder_info, session_options
from classifier.errors import ModelLoadError
from classifier.paths import SHIPPED_EMBEDDERS

MANIFEST = "manifest.json"
HEAD_FILE = "head.onnx"


class EmbedderRef(BaseModel):
    """Which embedder a head was trained on: id, file, and that file's sha256."""

    model_config = ConfigDict(frozen=True)

    id: str
    dim: int
    file: str = "model.onnx"
    sha256: str
    path: str = Field(description="directory, relative to the model directory (or absolute)")


class HeadSpec(BaseModel):
    """The scikit-learn head exported to ONNX."""

    model_config = ConfigDict(frozen=True)

    file: str = HEAD_FILE
    sha256: str
    kind: str
    calibration: str
    features: list[str]
    features_version: int
    inputs: int


class Manifest(BaseModel):
    """`manifest.json` of a model directory."""

    model_config = ConfigDict(frozen=True)

    format: int = 1
    version: str
    created: str
    embedder: EmbedderRef
    head: HeadSpec
    long_text: str = "head_tail"
    training_data: dict[str, object] = Field(default_factory=dict)
    recipe: dict[str, object] = Field(default_factory=dict)
    metrics: dict[str, object] = Field(default_factory=dict)
    suggested_thresholds: dict[str, float] = Field(default_factory=dict)


def read_manifest(model_dir: Path) -> Manifest:
    """Parse and validate `model_dir/manifest.json`, or raise ModelLoadError saying what is wrong."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    path = model_dir / MANIFEST
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{model_dir} is not a model directory (no {MANIFEST})") from exc
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelLoadError(f"{path}: corrupt manifest: {' '.join(first)}") from exc


def write_manifest(model_dir: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (temp file + rename)."""
    tmp = model_dir / (MANIFEST + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n")
    tmp.replace(model_dir / MANIFEST)


def verify_head(model_dir: Path, manifest: Manifest) -> Path:
    """The head's path, after checking that its sha256 matches the manifest."""
    path = model_dir / manifest.head.file
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: missing head file {manifest.head.file}")
    if sha256_file(path) != manifest.head.sha256:
        raise ModelLoadError(f"{path}: sha256 does not match the manifest (corrupt or replaced)")
    return path


def open_head(model_dir: Path, manifest: Manifest, what: str = "head") -> Any:
    """An onnxruntime session (one thread) on the verified head file; ModelLoadError when it cannot load."""
    import onnxruntime as ort

    head_path = verify_head(model_dir, manifest)
    try:
        return ort.InferenceSession(
            str(head_path), sess_options=session_options(1), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises bare exceptions for bad graphs
        raise ModelLoadError(f"{head_path}: cannot load the {what}: {exc}") from exc


def resolve_embedder(model_dir: Path, ref: EmbedderRef) -> Path:
    """The embedder directory the manifest points to, checked against its sha256.

    Looked up in order: `model_dir/embedder`, the manifest's `path`, the shipped `models/embedder/<name>`.
    """
    candidates = [model_dir / "embedder", (model_dir / ref.path), SHIPPED_EMBEDDERS / Path(ref.id).name]
    seen_mismatch = None
    for directory in candidates:
        if not (directory / "embedder.json").is_file():
            continue
        info = read_embedder_info(directory)
        if info.id == ref.id and info.dim == ref.dim and info.files.get(ref.file) == ref.sha256:
            return directory.resolve()
        seen_mismatch = directory
    if seen_mismatch is not None:
        raise ModelLoadError(
            f"{model_dir}: manifest/embedder mismatch: the head was trained on {ref.id} ({ref.file} "
            f"sha256 {ref.sha256[:12]}…) but {seen_mismatch} holds a different embedder"
        )
    raise ModelLoadError(
        f"{model_dir}: embedder {ref.id} not found (looked in {', '.join(map(str, candidates))})"
    )


def embedder_ref(model_dir: Path, embedder_dir: Path, file: str = "model.onnx") -> EmbedderRef:
    """A reference from a (new) model directory to the embedder it was trained with."""
    import os

    info = read_embedder_info(embedder_dir)
    relative = os.path.relpath(embedder_dir.resolve(), model_dir.resolve())
    return EmbedderRef(id=info.id, dim=info.dim, file=file, sha256=info.files[file], path=relative)
