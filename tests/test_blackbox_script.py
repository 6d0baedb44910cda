"""scripts/blackbox.py, run as anyone would run it, so the walk cannot rot: every check passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKS = 13  # one line per check in scripts/blackbox.py


def test_the_black_box_walk_passes_every_check() -> None:
    walk = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "blackbox.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    lines = walk.stdout.splitlines()
    assert walk.returncode == 0, walk.stdout + walk.stderr
    assert [line for line in lines if line.startswith("FAIL")] == []
    assert sum(line.startswith("PASS ") for line in lines) == CHECKS, walk.stdout
    assert lines[-1] == "PASS: every check"
