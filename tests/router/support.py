"""Test helpers shared by the router tests: prompts, a keyed fake classifier, configs for the stand-ins."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router._proto import router_pb2 as pb
from router.config import DEFAULT_MODELS_DIR
from tests.router.standins import StandIn

# The classifier the integration tests serve: the shipped model unless RIGHTSIZE_TEST_MODEL_DIR names another.
MODEL_DIR = Path(os.environ.get("RIGHTSIZE_TEST_MODEL_DIR") or DEFAULT_MODELS_DIR / "default")
SMALL_REPLY = "small tier answer"
LARGE_REPLY = "large tier answer from the cloud"
TASK_PROMPT = "Summarise the attached report in three bullet points."  # no social turn: routed on its score
JSON_PROMPT = "Turn this sentence into JSON: 'John is 35'"
HARD_PROMPT = (
    "Design a globally distributed, strongly consistent key-value store: explain the replication protocol, "
    "leader election, failure detection, and how you would handle network partitions and clock skew."
)


@dataclass
class Backends:
    """The two stand-in backends of a test: Ollama as the small tier, OpenAI as the large one."""

    small: StandIn
    large: StandIn


class KeyedScorer:
    """A fake classifier at the one-method seam: a fixed score per text (default for any other text)."""

    version = "fake-1"

    def __init__(self, scores: dict[str, float] | None = None, default: float = 0.2):
        self.scores = scores or {}
        self.default = default
        self.batches: list[list[str]] = []

    def score(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return np.array([self.scores.get(text, self.default) for text in texts], dtype=np.float32)


def config_dict(backends: Backends, **routing: Any) -> dict[str, Any]:
    """A config pointing the tiers at the stand-ins; the large tier has a configured price."""
    return {
        "server": {"address": "127.0.0.1:0", "metrics_port": 0, "grace_period_s": 2},
        "tiers": {
            "small": {"model": "ollama_chat/llama3:8b", "api_base": backends.small.url, "timeout": 10},
            "large": {
                "model": "openai/gpt-4o",
                "api_base": backends.large.url,
                "api_key": "sk-test",
                "timeout": 10,
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
            },
        },
        "routing": routing,
        "models": {"dir": str(MODEL_DIR.parent), "active": MODEL_DIR.name},
    }


def log_section(directory: Path) -> dict[str, Any]:
    """A `log:` config section keeping the request log and its spill files under `directory`."""
    return {
        "log": {
            "url": f"sqlite:///{directory / 'requestlog' / 'requests.db'}",
            "spill_dir": str(directory / "requestlog" / "spill"),
            "flush_interval_ms": 50,
        }
    }


def user(text: str) -> list[pb.Message]:
    """One user message, as proto."""
    return [pb.Message(role="user", content=text)]


class FakeClock:
    """A monotonic clock (seconds) that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
