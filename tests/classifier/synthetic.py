"""A small deterministic labelled set: short lookups the small model handles, long design tasks it fails."""

from __future__ import annotations

import json
import random
from pathlib import Path

EASY = [
    "What is the capital of {x}?",
    "Turn this sentence into JSON: '{x} is {n}'",
    "Classify the sentiment of: 'I love {x}'",
    "Fix the spelling: '{x} are grate'",
    "Translate to French: 'good morning, {x}'",
]
HARD = [
    "Design a fault-tolerant distributed system for {x} handling {n} million requests per second; analyse "
    "consistency, partitioning, failure modes and trade-offs step by step.",
    "Prove that the sum of the first {n} odd numbers equals a square, then generalise the argument to {x}.",
    "Implement a lock-free concurrent hash map in C++ for {x}, explain the memory ordering of every atomic, "
    "and analyse its complexity under contention with {n} threads.",
    "Write a detailed migration plan for moving {x}'s {n}-service monolith to event sourcing, with risks, "
    "rollback strategy and a comparison of three architectures.",
]
NAMES = [
    "Alice",
    "Paris",
    "Kenya",
    "the bakery",
    "Project Nova",
    "Bob",
    "Quebec",
    "the museum",
    "Oslo",
    "Tokyo",
]


def rows(count: int, seed: int = 0) -> list[dict[str, object]]:
    """`count` rows; about 15% label noise so the task is not trivially separable."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        hard = index % 2 == 0
        template = rng.choice(HARD if hard else EASY)
        prompt = template.format(x=rng.choice(NAMES), n=rng.randint(2, 900)) + f" (#{index})"
        small_ok = 0 if hard else 1
        if rng.random() < 0.15:
            small_ok = 1 - small_ok
        out.append({"id": f"r{index}", "prompt": prompt, "small_ok": small_ok, "source": f"s{index % 3}"})
    return out


def write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path
