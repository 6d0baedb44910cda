"""Loading model directories: every way a directory can be wrong gives a clear ModelLoadError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from classifier.errors import ModelLoadError
from classifier.scoring import Scorer


@pytest.fixture()
def model_copy(tmp_path: Path, default_model_dir: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(default_model_dir, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["embedder"]["path"] = str((default_model_dir / manifest["embedder"]["path"]).resolve())
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_default_model_scores(default_model_dir: Path) -> None:
    scorer = Scorer.from_path(default_model_dir)
    scores = scorer.score(["Turn this sentence into JSON: 'John is 35'", "hello"])
    assert scores.dtype == np.float32 and scores.shape == (2,)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scorer.version == json.loads((default_model_dir / "manifest.json").read_text())["version"]
    assert scorer.score([]).shape == (0,)


def test_copied_model_loads(model_copy: Path) -> None:
    assert Scorer.from_path(model_copy).score(["x"]).shape == (1,)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Scorer.from_path(tmp_path / "nope")


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no manifest.json"):
        Scorer.from_path(tmp_path)


def test_corrupt_manifest(model_copy: Path) -> None:
    (model_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="corrupt manifest"):
        Scorer.from_path(model_copy)


def test_manifest_missing_key(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    del manifest["head"]
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="corrupt manifest"):
        Scorer.from_path(model_copy)


def test_tampered_head(model_copy: Path) -> None:
    with (model_copy / "head.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="sha256 does not match"):
        Scorer.from_path(model_copy)


def test_embedder_mismatch(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["embedder"]["sha256"] = "0" * 64
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="manifest/embedder mismatch"):
        Scorer.from_path(model_copy)


def test_feature_mismatch(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["head"]["features_version"] = 999
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="features"):
        Scorer.from_path(model_copy)
