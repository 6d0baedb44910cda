"""`rightsize score | train | eval | calibrate` as a user runs them, including every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.classifier import synthetic
from tests.conftest import run_cli


def assert_clean_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained through the CLI on 200 synthetic rows."""
    root = tmp_path_factory.mktemp("trained")
    data = synthetic.write(root / "train.jsonl", synthetic.rows(200, seed=3))
    result = run_cli("train", "--data", str(data), "--out", str(root / "model"), "--C", "0.5")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    return root / "model"


def test_train_then_score_round_trip(tmp_path: Path, trained: Path) -> None:
    inputs = [
        {"id": "easy", "prompt": "What is the capital of Oslo?"},
        {
            "id": 7,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": synthetic.HARD[0].format(x="a bank", n=5)},
            ],
        },
    ]
    source = synthetic.write(tmp_path / "in.jsonl", inputs)
    out = tmp_path / "out.jsonl"
    result = run_cli("score", "--input", str(source), "--output", str(out), "--model", str(trained))
    assert result.returncode == 0, result.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in scored] == ["easy", 7]
    assert scored[0]["score"] < scored[1]["score"]
    assert scored[0]["tier"] == "small" and scored[1]["tier"] == "large"
    assert all(0 <= row["score"] <= 1 for row in scored)


def test_score_uses_the_shipped_default(tmp_path: Path) -> None:
    source = synthetic.write(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hello"}])
    result = run_cli("score", "--input", str(source), "--output", "-")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["id"] == 1 and row["tier"] in {"small", "large"}


def test_eval_prints_figures_and_plots(tmp_path: Path, trained: Path) -> None:
    data = synthetic.write(tmp_path / "eval.jsonl", synthetic.rows(120, seed=4))
    plot = tmp_path / "curve.png"
    result = run_cli("eval", "--data", str(data), "--model", str(trained), "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    for header in ("AUC", "APGR", "CPT(50%)", "CPT(80%)", "random", "always small"):
        assert header in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads(run_cli("eval", "--data", str(data), "--model", str(trained), "--json").stdout)
    assert figures["apgr"] > 0.6 and figures["auc"] > 0.7


def test_calibrate_hits_the_share(tmp_path: Path, trained: Path) -> None:
    prompts = synthetic.write(tmp_path / "p.jsonl", synthetic.rows(100, seed=5))
    result = run_cli(
        "calibrate", "--input", str(prompts), "--target-large-fraction", "0.3", "--model", str(trained)
    )
    assert result.returncode == 0, result.stderr
    threshold = float(result.stdout.strip())
    out = tmp_path / "s.jsonl"
    run_cli(
        "score",
        "--input",
        str(prompts),
        "--output",
        str(out),
        "--model",
        str(trained),
        "--threshold",
        str(threshold),
    )
    tiers = [json.loads(line)["tier"] for line in out.read_text().splitlines()]
    assert abs(tiers.count("large") / len(tiers) - 0.3) <= 0.01


def test_malformed_json_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok", "small_ok": 1}\n{"prompt": oops}\n')
    assert_clean_error(
        run_cli("train", "--data", str(bad), "--out", str(tmp_path / "m")), "bad.jsonl:2", "malformed"
    )
    assert_clean_error(run_cli("score", "--input", str(bad), "--output", "-"), "bad.jsonl:2")


def test_missing_small_ok(tmp_path: Path) -> None:
    data = synthetic.write(tmp_path / "d.jsonl", [{"prompt": "a", "small_ok": 1}, {"prompt": "b"}])
    assert_clean_error(
        run_cli("train", "--data", str(data), "--out", str(tmp_path / "m")), "d.jsonl:2", "small_ok"
    )


def test_one_class_only(tmp_path: Path) -> None:
    data = synthetic.write(tmp_path / "d.jsonl", [{"prompt": f"p{i}", "small_ok": 1} for i in range(5)])
    assert_clean_error(run_cli("train", "--data", str(data), "--out", str(tmp_path / "m")), "both classes")


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert_clean_error(run_cli("train", "--data", str(empty), "--out", str(tmp_path / "m")), "empty")
    assert_clean_error(run_cli("score", "--input", str(empty), "--output", "-"), "empty")


def test_bad_model_directories(tmp_path: Path, default_model_dir: Path) -> None:
    prompts = synthetic.write(tmp_path / "p.jsonl", [{"id": 1, "prompt": "x"}])
    missing = run_cli("score", "--input", str(prompts), "--output", "-", "--model", str(tmp_path / "none"))
    assert_clean_error(missing, "does not exist")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(default_model_dir, corrupt)
    (corrupt / "manifest.json").write_text("[]")
    assert_clean_error(
        run_cli("score", "--input", str(prompts), "--output", "-", "--model", str(corrupt)),
        "corrupt manifest",
    )
    mismatch = tmp_path / "mismatch"
    shutil.copytree(default_model_dir, mismatch)
    manifest = json.loads((mismatch / "manifest.json").read_text())
    manifest["embedder"]["path"] = str((default_model_dir / manifest["embedder"]["path"]).resolve())
    manifest["embedder"]["sha256"] = "f" * 64
    (mismatch / "manifest.json").write_text(json.dumps(manifest))
    assert_clean_error(
        run_cli("score", "--input", str(prompts), "--output", "-", "--model", str(mismatch)),
        "manifest/embedder mismatch",
    )


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    result = run_cli("calibrate", "--input", "x.jsonl", "--target-large-fraction", "1.5")
    assert result.returncode == 2 and "outside [0, 1]" in result.stderr and "Traceback" not in result.stderr
