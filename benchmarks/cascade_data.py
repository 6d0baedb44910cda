"""Generate the cascade dataset: real small-model answers, with token log-probabilities, graded.

    python benchmarks/cascade_data.py --per-family 200 --limit N --out benchmarks/data/cascade_smollm2.jsonl

The items come from benchmarks/cascade_tasks.py (deterministic for `--seed`). By default each is answered
in-process by llama-cpp-python's `Llama.create_chat_completion` (the very call `llama_cpp.server` makes,
with the router's model file, context and `logits_all=True`), and the top-2 log-probabilities are read from
the logits it kept: the same numbers the server returns, about 20x faster, because the server's own
log-probability code log-softmaxes its whole n_ctx x vocabulary score buffer and sorts the 49k-entry
vocabulary in Python for every token (measured here: 1-2 s per token on a loaded 2-core machine, against
~30 ms per token without; a serving cost the cascade's small tier pays too). `--server` sends the request
to the llama.cpp OpenAI-compatible server instead (`llama_cpp.server`, launched with the router's own
arguments, router.backends.llama_child.EmbeddedSpec) on `/v1/chat/completions` with `logprobs: true,
top_logprobs: 2`. Either way the request carries the embedded tier's serve defaults
(SERVE_DEFAULTS: temperature 0.2, top_p 0.9, max_tokens 256, its stop strings; a per-item seed), exactly the
request a cascade's small tier makes, so the features the head trains on are the ones it sees in service.
One JSON line per answer: the item, the answer text, finish_reason, token counts, latency (ms, on a shared
2-core machine: indicative only), correctness, and `tokens` = [[token, logprob, second token, its logprob],
...]. With `--samples 2` (the default) a second answer is drawn at SAMPLE_TEMPERATURE for the
self-consistency signal, kept under `sample` with its own latency and correctness (`--resample` keeps the
rows of `--only` as they are and adds only that sample, with the same exemplars). Reruns append and skip
items already done; the items are shuffled across families, so any prefix of a run is a fair mix.
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
# The embedded tier's generation defaults (issue 16), which the cascade's small tier serves with.
SERVE_DEFAULTS: dict[str, Any] = {
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 256,
    "stop": ["<|im_end|>", "<|im_start|>", "\n\n\n"],
}
SAMPLE_TEMPERATURE = 0.8  # the self-consistency sample: diverse enough to disagree when the model is unsure


def item_id(item: TaskItem) -> str:
    import hashlib

    return hashlib.sha256(f"{item.system}\n{item.prompt}".encode()).hexdigest()[:16]


def item_seed(item: TaskItem, sample: int) -> int:
    return int(item_id(item)[:8], 16) + sample


def fewshot_messages(
    item: TaskItem, vector: Any, store: Any, k: int | None = None
) -> tuple[list[dict[str, str]], int]:
    """The item's chat messages with the exemplars router.fewshot would inject from `store` (an
    ExemplarStore of large answers), at FewShotSettings' defaults (`k` overrides its k): (messages, count)."""
    from router.domain import Message
    from router.fewshot import Query, inject
    from router.fewshot.settings import FewShotSettings

    settings = FewShotSettings()
    messages = [Message("system", item.system), Message("user", item.prompt)]
    count = 0
    if store is not None:
        query = Query(
            vector,
            None,
            k or settings.k,
            settings.min_similarity,
            settings.max_tokens,
            frozenset({item.prompt}),
        )
        selection = store.search(query)
        messages, count = list(inject(messages, selection)), len(selection.matches)
    return [{"role": m.role, "content": m.content} for m in messages], count


def family_stores(items: list[TaskItem]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per family, an ExemplarStore of every item's gold answer (what an always-right large tier replies),
    embedded with the routing embedder; and each prompt's embedding. An item never gets itself back."""
    import numpy as np

    from classifier.embedding import Embedder
    from classifier.paths import SHIPPED_EMBEDDER
    from router.fewshot import Exemplar, ExemplarStore

    embedder = Embedder.from_path(SHIPPED_EMBEDDER, variant="model.int8.onnx", threads=1, long_text="joined")
    vectors = embedder.embed([item.prompt for item in items])
    by_prompt = {item.prompt: vectors[row] for row, item in enumerate(items)}
    stores = {}
    for family in sorted({item.family for item in items}):
        rows = [row for row, item in enumerate(items) if item.family == family]
        exemplars = [
            Exemplar(f"x{row}", items[row].prompt, items[row].gold, "logs", request_id=item_id(items[row]))
            for row in rows
        ]
        stores[family] = ExemplarStore.from_embedded(exemplars, np.stack([vectors[row] for row in rows]))
    return stores, by_prompt


def chat(
    api_base: str, alias: str, item: TaskItem, params: dict[str, Any], seed: int | None = None
) -> dict[str, Any]:
    """One chat call with `params` and top-2 log-probabilities; the raw fields the dataset keeps."""
    body = {
        "model": alias,
        **params,
        **({} if seed is None else {"seed": seed}),
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


class InProcess:
    """The small model loaded as llama_cpp.server loads it; answers with the server's response fields."""

    def __init__(self, model: str, threads: int):
        from llama_cpp import Llama

        from router.backends.llama_child import EmbeddedSpec as LocalModelSpec
        from router.config.embedded import EmbeddedOptions

        spec = LocalModelSpec.from_embedded(model, EmbeddedOptions(threads=threads))
        self._llm = Llama(
            model_path=str(spec.gguf),
            n_ctx=spec.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=True,  # the server's default: what lets it report log-probabilities
            verbose=False,
        )

    def chat(
        self, item: TaskItem, params: dict[str, Any], seed: int, messages: list[dict[str, str]] | None = None
    ) -> dict[str, Any]:
        if messages is None:
            messages = [{"role": "system", "content": item.system}, {"role": "user", "content": item.prompt}]
        return self.chat_messages(messages, params, seed)

    def chat_messages(
        self, messages: list[dict[str, str]], params: dict[str, Any], seed: int
    ) -> dict[str, Any]:
        import numpy as np

        started = time.perf_counter()
        payload = self._llm.create_chat_completion(messages, seed=seed, **params)
        latency_ms = (time.perf_counter() - started) * 1000
        usage = payload["usage"]
        n_prompt, n_completion = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        ids = [int(token) for token in self._llm._input_ids[n_prompt : n_prompt + n_completion]]
        scores = np.asarray(self._llm.scores[n_prompt - 1 : n_prompt - 1 + len(ids)], dtype=np.float64)
        tokens = []
        if ids:
            # the server's Llama.logits_to_logprobs: a log-softmax per row
            shifted = scores - scores.max(axis=1, keepdims=True)
            logprobs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            for index, token in enumerate(ids):
                row = logprobs[index]
                chosen = float(row[token])
                row[token] = -np.inf
                other = int(np.argmax(row))
                text = self._llm.detokenize([token], prev_tokens=ids[:index]).decode("utf-8", errors="ignore")
                second = self._llm.detokenize([other], prev_tokens=ids[:index]).decode(
                    "utf-8", errors="ignore"
                )
                tokens.append([text, chosen, second, float(row[other])])
        choice = payload["choices"][0]
        return {
            "answer": choice["message"].get("content") or "",
            "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": n_prompt,
            "completion_tokens": n_completion,
            "latency_ms": round(latency_ms, 1),
            "tokens": tokens,
        }


def start_server(model: str, threads: int) -> tuple[subprocess.Popen[bytes], str, str]:
    """The llama.cpp child, as the router launches it, plus `--logits_all True`; waits until it answers."""
    from router.backends.llama_child import EmbeddedSpec as LocalModelSpec
    from router.config.embedded import EmbeddedOptions

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
    parser.add_argument("--max-tokens", type=int, default=SERVE_DEFAULTS["max_tokens"])
    parser.add_argument("--samples", type=int, choices=(1, 2), default=2, help="2: add a sampled answer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, help="stop after this many new answers")
    parser.add_argument("--server", action="store_true", help="ask llama_cpp.server (slow logprobs)")
    parser.add_argument("--skip", type=int, default=0, help="start at this item (to split a run in two)")
    parser.add_argument(
        "--exemplars",
        type=int,
        default=0,
        help="inject up to this many same-family gold answers as router.fewshot would (0: zero-shot)",
    )
    parser.add_argument("--only", type=Path, help="answer only the items of this dataset (.jsonl[.gz])")
    parser.add_argument(
        "--resample",
        action="store_true",
        help="with --only: keep its rows' answers and add only the second, sampled answer to each",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from router.config.embedded import embedded_alias

    name = args.name or embedded_alias(args.model)
    items = make_items(args.per_family, args.seed)
    done: set[str] = set()
    if args.out.exists():
        done = {json.loads(line)["id"] for line in args.out.read_text().splitlines() if line.strip()}
    todo = [item for item in items[args.skip :] if item_id(item) not in done]
    kept: dict[str, dict[str, Any]] = {}
    if args.only is not None:
        import gzip

        opener = gzip.open if args.only.suffix == ".gz" else open
        with opener(args.only, "rt", encoding="utf-8") as handle:
            kept = {row["id"]: row for row in map(json.loads, filter(str.strip, handle))}
        todo = [item for item in todo if item_id(item) in kept]
    if args.resample and (args.only is None or args.samples != 2):
        raise SystemExit("--resample: needs --only and --samples 2")
    todo = todo[: args.limit]
    if args.exemplars and args.server:
        raise SystemExit("--exemplars: in-process only")
    stores, vectors = family_stores(items) if args.exemplars else ({}, {})
    print(f"{len(items)} items, {len(done)} done, {len(todo)} to go", flush=True)
    if args.server:
        process, api_base, alias = start_server(args.model, args.threads)

        def answer(
            item: TaskItem, params: dict[str, Any], seed: int, messages: list[dict[str, str]] | None = None
        ) -> dict[str, Any]:
            return chat(api_base, alias, item, params, seed)  # zero-shot only (--exemplars is refused)
    else:
        process, answer = None, InProcess(args.model, args.threads).chat
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a", encoding="utf-8") as handle:
            for count, item in enumerate(todo, start=1):
                params = {**SERVE_DEFAULTS, "max_tokens": args.max_tokens}
                messages, shots = None, 0
                if args.exemplars:
                    messages, shots = fewshot_messages(
                        item, vectors[item.prompt], stores[item.family], args.exemplars
                    )
                if args.resample:
                    row = kept[item_id(item)]
                    if row.get("exemplars", 0) != shots:
                        raise SystemExit(
                            f"{row['id']}: {shots} exemplars now, {row.get('exemplars', 0)} then"
                        )
                else:
                    result = answer(item, params, item_seed(item, 0), messages)
                    row = {"id": item_id(item), "model": name, **asdict(item), **result, "exemplars": shots}
                    row["correct"] = grade(item, result["answer"])
                if args.samples == 2:
                    hot = {**params, "temperature": SAMPLE_TEMPERATURE}
                    sampled = answer(item, hot, item_seed(item, 1), messages)
                    del sampled["tokens"]
                    row["sample"] = {**sampled, "correct": grade(item, sampled["answer"])}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                if count % 50 == 0:
                    print(f"{count}/{len(todo)}", flush=True)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
