"""Generate the cascade dataset: real small-model answers, with token log-probabilities, graded.

    python benchmarks/cascade_data.py --per-family 220 --limit N --out benchmarks/data/cascade_smollm2.jsonl

The items come from benchmarks/cascade_tasks.py (deterministic for `--seed`). Each is sent once to the
llama.cpp OpenAI-compatible server (`llama_cpp.server`, launched with the router's own arguments,
router.local_model.LocalModelSpec; its default `logits_all=True` lets it return log-probabilities) on
`/v1/chat/completions` with `logprobs: true, top_logprobs: 2`, temperature 0 and `--max-tokens`, exactly
the request a cascade's small tier makes. One JSON line per answer: the item, the answer text,
finish_reason, token counts, latency (ms, on a shared 2-core machine: indicative only), correctness, and
`tokens` = [[token, logprob, second token, its logprob], ...]. Reruns append and skip items already done.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cascade_tasks import TaskItem, grade, make_items  # noqa: E402

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def item_id(item: TaskItem) -> str:
    import hashlib

    return hashlib.sha256(f"{item.system}\n{item.prompt}".encode()).hexdigest()[:16]


def chat(api_base: str, alias: str, item: TaskItem, max_tokens: int) -> dict[str, Any]:
    """One greedy chat call with top-2 log-probabilities; the raw fields the dataset keeps."""
    body = {
        "model": alias,
        "temperature": 0,
        "max_tokens": max_tokens,
        "logprobs": True,
        "top_logprobs": 2,
        "messages": [{"role": "system", "content": item.system}, {"role": "user", "content": item.prompt}],
    }
    request = urllib.request.Request(
        f"{api_base}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with _OPENER.open(request, timeout=300) as response:
        payload = json.load(response)
    latency_ms = (time.perf_counter() - started) * 1000
    choice = payload["choices"][0]
    content = ((choice.get("logprobs") or {}).get("content")) or []
    tokens = []
    for entry in content:
        alternatives = [alt for alt in entry.get("top_logprobs") or [] if alt.get("token") != entry["token"]]
        second = alternatives[0] if alternatives else {"token": None, "logprob": None}
        tokens.append([entry["token"], entry["logprob"], second["token"], second["logprob"]])
    usage = payload.get("usage") or {}
    return {
        "answer": choice["message"].get("content") or "",
        "finish_reason": choice.get("finish_reason"),
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
        "latency_ms": round(latency_ms, 1),
        "tokens": tokens,
    }


def start_server(model: str, threads: int) -> tuple[subprocess.Popen[bytes], str, str]:
    """The llama.cpp child, as the router launches it, plus `--logits_all True`; waits until it answers."""
    from router.local_model import EmbeddedOptions, LocalModelSpec

    spec = LocalModelSpec.from_embedded(model, EmbeddedOptions(threads=threads))
    command = spec.command(os.getpid())  # the server default logits_all=True gives log-probabilities
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama.cpp exited with {process.returncode}")
        try:
            with _OPENER.open(f"{spec.api_base}/models", timeout=2):
                return process, spec.api_base, spec.alias
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("llama.cpp did not start within 180 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="catalog name or GGUF path")
    parser.add_argument("--name", help="model name recorded in the rows (default: --model's file stem)")
    parser.add_argument("--per-family", type=int, default=300)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, help="stop after this many new answers")
    parser.add_argument("--skip", type=int, default=0, help="start at this item (to split a run in two)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from router.local_model import embedded_alias

    name = args.name or embedded_alias(args.model)
    items = make_items(args.per_family, args.seed)
    done: set[str] = set()
    if args.out.exists():
        done = {json.loads(line)["id"] for line in args.out.read_text().splitlines() if line.strip()}
    todo = [item for item in items[args.skip :] if item_id(item) not in done][: args.limit]
    print(f"{len(items)} items, {len(done)} done, {len(todo)} to go", flush=True)
    process, api_base, alias = start_server(args.model, args.threads)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a", encoding="utf-8") as handle:
            for count, item in enumerate(todo, start=1):
                result = chat(api_base, alias, item, args.max_tokens)
                row = {"id": item_id(item), "model": name, **asdict(item), **result}
                row["correct"] = grade(item, result["answer"])
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                if count % 50 == 0:
                    print(f"{count}/{len(todo)}", flush=True)
    finally:
        process.terminate()
        process.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
