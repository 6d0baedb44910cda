"""Shared fixtures: paths to the shipped model and the shared routing data, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "routing"
# Marked `slow` (left out by `make test-fast`): soak, kill -9 and real-model tests (SmolLM2, torch).
SLOW_FILES = frozenset(
    ROOT / name
    for name in (
        "tests/soak/test_soak.py",
        "tests/router/test_serve_kill.py",
        "tests/router/requestlog/test_log_kill.py",
    )
)
SLOW_MARKERS = ("e2e", "export")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path in SLOW_FILES or any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    return ROOT / "models" / "default"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "train.jsonl").is_file():
        pytest.skip(f"shared routing data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `rightsize ARGS` in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )
