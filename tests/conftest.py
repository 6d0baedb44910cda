"""Shared fixtures: paths to the shipped model and the shared routing data, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
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


STATE_DIR = ROOT / "var"  # what `make serve` writes (request log, spill files): tests never touch it


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in an empty directory of its own: a config without a `log:` section logs to
    `var/rightsize/requests.db` relative to the working directory, which must not be the checkout's."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def _state_snapshot() -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(STATE_DIR)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(STATE_DIR.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(autouse=True, scope="session")
def _checkout_state_untouched() -> Iterator[None]:
    """Fails the run when any test wrote into the checkout's `var/` (e.g. a subprocess started with
    cwd=ROOT and no --config)."""
    before = _state_snapshot()
    yield
    after = _state_snapshot()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"tests wrote into {STATE_DIR}: {', '.join(changed)}"


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
