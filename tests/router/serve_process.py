"""`rightsize serve --config FILE` as a child process, its stderr collected line by line.

Shared by the process-level tests and scripts/blackbox.py, so it imports no pytest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    """`python -m router serve --config FILE [ARGS]` with its stderr collected line by line."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None, args: Sequence[str] = ()):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--config", str(config_path), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout_s: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r}; stderr:\n" + "\n".join(self.lines))

    def close(self) -> None:
        """Collect the rest of stderr (after the process ended)."""
        self._reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def stop(self) -> None:
        """Kill the process if it still runs, then close."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.close()
