"""The teacher step's lift, end to end: `rightsize teach` fills the request log from a large tier that
answers correctly, then the router serves SmolLM2-135M with few-shot from that log.

    python benchmarks/teach.py [--smoke] [--test-items 100] [--sizes 100 1000] [--json FILE]

The task (the vocabulary of bench_fewshot.py): a sentence that prices a product, e.g. "I paid ¥618 for a
bicycle yesterday.", becomes `{"product": "bicycle", "price": 618, "currency": "JPY"}`, checked against its
programmatic gold answer, field by field and as a whole object (the keys exactly the three fields; strings
compared trimmed and case-insensitively, a price as a number, "1,299.50" read as 1299.5). Items are
deterministic (`--seed`), twelve templates over thirty products and eight currencies; the taught inputs
and the held-out inputs are separate splits with no sentence in both (the 100 taught inputs are the first
100 of the 1,000).

1. A stand-in OpenAI-compatible large tier on loopback (tests/router/standins.py) answers each input with
   its gold JSON. `rightsize teach` (the CLI entry point, in process, through the server's own tier stack)
   teaches the first 100 inputs to tenant `t100` and the first 1,000 to tenant `t1000`, each once with the
   schema (`--schema purchase.json`) and once as free text, into a temporary request log. A second run of
   the 100 checks that nothing is taught twice.
2. `create_server` serves that log with the embedded SmolLM2-135M small tier (llama.cpp, one thread) and
   `tiers.small.few_shot` on (source logs, the shipped k / min_similarity / max_tokens), fallback off (a
   wrong small answer must not be rescued by the large tier). Each held-out input is sent as Complete with
   `force_tier: small`, greedy (temperature 0, max_tokens 64), in six settings interleaved per item (the
   order rotates): without / with `response_format` json_schema, times no exemplars (metadata few_shot=off)
   / exemplars taught from 100 inputs / from 1,000 (metadata tenant t100 / t1000; task purchase). An
   exemplar taught with the schema is offered only to requests with the schema, and vice versa.
3. Accuracy comes with 95 % bootstrap intervals over the held-out items (2,000 resamples), and each lift
   with a paired bootstrap interval. Latency is the client's Complete round trip (p50 / p95): the machine
   is shared, so compare the settings of one run (they are interleaved), not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.bench_fewshot import CURRENCIES, Item, make_items  # noqa: E402
from tests.router.standins import StandIn  # noqa: E402

TASK = "purchase"
FIELDS = ("product", "price", "currency")
SYSTEM = (
    'Extract the purchase from the sentence. Reply with JSON only, with the keys "product" (the item, as '
    'written), "price" (a number) and "currency" (its ISO 4217 code).'
)
PROMPT = "Extract the product, price and currency as JSON: '{sentence}'"
SCHEMA = {
    "type": "object",
    "properties": {
        "product": {"type": "string"},
        "price": {"type": "number"},
        "currency": {"type": "string", "enum": sorted(CURRENCIES)},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}
MAX_ANSWER_TOKENS = 64
BOOTSTRAP = 2_000


def prompt_of(item: Item) -> str:
    return PROMPT.format(sentence=item.sentence)


def gold_of(item: Item) -> dict[str, Any]:
    price: float | int = int(item.price) if item.price == int(item.price) else item.price
    return {"product": item.product, "price": price, "currency": item.currency}


def parse_answer(reply: str) -> dict[str, Any] | None:
    """The reply as a JSON object: the whole reply, else its first {...}; None when neither parses."""
    candidates = [reply.strip()]
    if match := re.search(r"\{.*?\}", reply, re.DOTALL):
        candidates.append(match.group(0))
    for text in candidates:
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def grade(reply: str, item: Item) -> dict[str, bool]:
    """Per field whether the reply's object has it right, `parsed`, and `whole`: every field right and
    no other key."""
    payload = parse_answer(reply)
    if payload is None:
        return {"parsed": False, "whole": False, **dict.fromkeys(FIELDS, False)}
    gold = gold_of(item)
    right = {}
    for field in FIELDS:
        value = payload.get(field)
        if field == "price":
            try:
                right[field] = abs(float(str(value).replace(",", "")) - item.price) < 1e-6
            except ValueError:
                right[field] = False
        else:
            right[field] = value is not None and str(value).strip().casefold() == str(gold[field]).casefold()
    return {"parsed": True, "whole": all(right.values()) and set(payload) == set(FIELDS), **right}


# --- 1. the teacher step ---------------------------------------------------------------------------


def config_dict(directory: Path, large: StandIn, small: dict[str, Any]) -> dict[str, Any]:
    """The server's config: `small` as the small tier, the stand-in as a priced OpenAI large tier."""
    return {
        "server": {"address": "127.0.0.1:0", "metrics_port": None, "grace_period_s": 2},
        "tiers": {
            "small": small,
            "large": {
                "model": "openai/gpt-4o",
                "api_base": large.url,
                "api_key": "sk-stand-in",
                "timeout": 30,
                "input_cost_per_token": 2.5e-6,
                "output_cost_per_token": 1e-5,
            },
        },  # fmt: skip
        "routing": {"fallback": False},  # a wrong small answer stays wrong
        "scoring": {"threads": 1},
        "log": {
            "url": f"sqlite:///{directory / 'requests.db'}",
            "spill_dir": str(directory / "spill"),
            "flush_interval_ms": 50,
        },
    }


def teach(config: Path, inputs: Path, tenant: str, schema: Path | None) -> dict[str, Any]:
    """One `rightsize teach` run through the CLI's entry point; its summary line, counts and wall time."""
    from router.cli import main

    argv = ["teach", "--config", str(config), "--inputs", str(inputs), "--task", TASK, "--tenant", tenant]
    argv += ["--system", SYSTEM] + (["--schema", str(schema)] if schema else [])
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    seconds = time.perf_counter() - started
    summary = out.getvalue().strip().splitlines()[0] if out.getvalue().strip() else err.getvalue()[-500:]
    if code != 0:
        raise SystemExit(f"rightsize teach failed ({code}): {summary}")
    counts = re.match(
        r"taught (\d+), already taught (\d+), invalid (\d+), failed (\d+); cost \$([\d.]+)", summary
    )
    assert counts, summary
    taught, skipped, invalid, failed = (int(counts.group(i)) for i in range(1, 5))
    return {
        "tenant": tenant,
        "schema": schema is not None,
        "summary": summary,
        "taught": taught,
        "skipped": skipped,
        "invalid": invalid,
        "failed": failed,
        "cost_usd": float(counts.group(5)),
        "seconds": seconds,
    }


def teach_all(directory: Path, config: Path, pool: list[Item], sizes: list[int]) -> list[dict[str, Any]]:
    schema = directory / f"{TASK}.json"
    schema.write_text(json.dumps(SCHEMA))
    runs = []
    for size in sizes:
        inputs = directory / f"inputs_{size}.jsonl"
        inputs.write_text("".join(json.dumps({"input": prompt_of(item)}) + "\n" for item in pool[:size]))
        for with_schema in (True, False):
            runs.append(
                {"inputs": size, **teach(config, inputs, f"t{size}", schema if with_schema else None)}
            )
            print(f"teach {size:>5} inputs, {'schema' if with_schema else 'text  '}: {runs[-1]['summary']} "
                  f"({runs[-1]['seconds']:.1f} s)", flush=True)  # fmt: skip
    rerun = {
        "inputs": sizes[0],
        **teach(config, directory / f"inputs_{sizes[0]}.jsonl", f"t{sizes[0]}", schema),
    }
    print(f"teach again {sizes[0]}, schema: {rerun['summary']}", flush=True)
    assert rerun["taught"] == 0 and rerun["skipped"] == sizes[0], rerun
    return [*runs, {**rerun, "rerun": True}]


def approved_counts(directory: Path, tenants: list[str]) -> dict[str, int]:
    """Approved exemplar pairs per tenant in the log, as few-shot reads them."""
    from router.fewshot.sources import approved_pairs
    from router.requestlog import open_store

    store = open_store(f"sqlite:///{directory / 'requests.db'}")
    try:
        return {tenant: sum(1 for _ in approved_pairs(store, tenant=tenant)) for tenant in tenants}
    finally:
        store.close()


# --- 2. SmolLM2 on the held-out inputs ---------------------------------------------------------------


def settings_of(sizes: list[int]) -> list[tuple[bool, str]]:
    """(with the schema, exemplars: "none" or the tenant taught from that many inputs) per setting."""
    return [(schema, shots) for schema in (False, True) for shots in ("none", *(f"t{n}" for n in sizes))]


async def measure(
    config: dict[str, Any], test: list[Item], sizes: list[int], expected_exemplars: int
) -> dict[str, list]:
    import grpc

    from router._proto import router_pb2 as pb
    from router._proto import router_pb2_grpc as pb_grpc
    from router.config import RouterConfig
    from router.rpc.server import COMPLETION_HEALTH_SERVICE, create_server
    from tests.router.waiting import SERVING, until, wait_health

    server, port = create_server(RouterConfig.model_validate(config))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    settings = settings_of(sizes)
    runs: dict[str, list[dict[str, Any]]] = {setting_name(*s): [] for s in settings}
    try:
        await wait_health(channel, COMPLETION_HEALTH_SERVICE, SERVING, timeout_s=180)
        fewshot = server.pipeline.fewshot
        assert fewshot is not None
        await until(lambda: fewshot.ready and len(fewshot.store or ()) == expected_exemplars, 600)
        print(f"serving; {expected_exemplars} exemplars loaded", flush=True)
        stub = pb_grpc.RouterStub(channel)
        schema_format = pb.ResponseFormat(
            type="json_schema", json_schema=json.dumps(SCHEMA), schema_name=TASK
        )
        params = pb.GenerationParams(max_tokens=MAX_ANSWER_TOKENS, temperature=0, seed=0)
        started = time.perf_counter()
        for index, item in enumerate(test):
            messages = [
                pb.Message(role="system", content=SYSTEM),
                pb.Message(role="user", content=prompt_of(item)),
            ]
            for schema, shots in settings[index % len(settings) :] + settings[: index % len(settings)]:
                metadata = {"task": TASK, **({"few_shot": "off"} if shots == "none" else {"tenant": shots})}
                request = pb.CompleteRequest(
                    messages=messages, params=params, force_tier="small", metadata=metadata,
                    response_format=schema_format if schema else None,
                )  # fmt: skip
                sent = time.perf_counter()
                try:
                    response = await stub.Complete(request, timeout=180)
                except grpc.aio.AioRpcError as error:
                    reply, row = "", {"error": f"{error.code().name}: {error.details()}"}
                else:
                    reply = response.text
                    assert response.decision.tier == "small" and not response.fallback, response
                    row = {
                        "prompt_tokens": response.usage.prompt_tokens,
                        "completion_tokens": response.usage.completion_tokens,
                        "exemplars": len(response.exemplar_ids),
                        "schema_valid": response.schema_valid,
                    }
                row |= {
                    "latency_ms": (time.perf_counter() - sent) * 1000,
                    "reply": reply,
                    **grade(reply, item),
                }
                runs[setting_name(schema, shots)].append(row)
            if (index + 1) % 10 == 0 or index + 1 == len(test):
                done = time.perf_counter() - started
                print(f"  {index + 1}/{len(test)} held-out items ({done:.0f} s)", flush=True)
    finally:
        await channel.close()
        await server.stop(0)
    return runs


def setting_name(schema: bool, shots: str) -> str:
    return f"{'schema' if schema else 'text'}/{shots.removeprefix('t')}"


# --- 3. figures --------------------------------------------------------------------------------------


def interval(values: np.ndarray, draws: np.ndarray) -> list[float]:
    """The 95 % percentile bootstrap interval of the mean of `values` over resampled indices `draws`."""
    means = values[draws].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(runs: dict[str, list[dict[str, Any]]], seed: int) -> dict[str, Any]:
    count = len(next(iter(runs.values())))
    draws = np.random.default_rng(seed).integers(0, count, (BOOTSTRAP, count))
    cells: dict[str, Any] = {}
    for name, rows in runs.items():
        latencies = [row["latency_ms"] for row in rows]
        whole = np.array([row["whole"] for row in rows], dtype=float)
        cells[name] = {
            "items": len(rows),
            "whole": float(whole.mean()),
            "whole_ci95": interval(whole, draws),
            "fields": {field: float(np.mean([row[field] for row in rows])) for field in FIELDS},
            "fields_ci95": {
                field: interval(np.array([row[field] for row in rows], dtype=float), draws)
                for field in FIELDS
            },
            "parsed": float(np.mean([row["parsed"] for row in rows])),
            "schema_valid": float(np.mean([row.get("schema_valid", False) for row in rows])),
            "errors": sum("error" in row for row in rows),
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p95": float(np.percentile(latencies, 95)),
            "prompt_tokens_mean": statistics.fmean(row.get("prompt_tokens", 0) for row in rows),
            "completion_tokens_mean": statistics.fmean(row.get("completion_tokens", 0) for row in rows),
            "exemplars_mean": statistics.fmean(row.get("exemplars", 0) for row in rows),
        }
    lifts = {}
    for name in runs:
        schema = name.split("/")[0]
        for base in {f"{schema}/none", "text/none"} - {name}:
            diff = np.array([a["whole"] - b["whole"] for a, b in zip(runs[name], runs[base], strict=True)])
            lifts[f"{name} - {base}"] = {"whole": float(diff.mean()), "ci95": interval(diff, draws)}
    return {"cells": cells, "lifts": lifts}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{results['task']}; {results['model']}; {results['test_items']} held-out items; "
        f"CPU {results['cpu']}, load average {results['load_average_1m']:.1f} (shared machine)"
    )
    head = f"{'setting':<14}{'whole':>7}{'95% CI':>14}{'product':>9}{'price':>7}{'currency':>9}"
    print(head + f"{'valid':>7}{'p50 ms':>8}{'p95 ms':>8}{'prompt tok':>11}{'shots':>6}")
    for name, cell in results["cells"].items():
        low, high = cell["whole_ci95"]
        fields = cell["fields"]
        print(
            f"{name:<14}{cell['whole']:>7.1%}{f'{low:.0%}-{high:.0%}':>14}{fields['product']:>9.0%}"
            f"{fields['price']:>7.0%}{fields['currency']:>9.0%}{cell['schema_valid']:>7.0%}"
            f"{cell['latency_ms_p50']:>8.0f}{cell['latency_ms_p95']:>8.0f}"
            f"{cell['prompt_tokens_mean']:>11.1f}{cell['exemplars_mean']:>6.2f}"
        )
    for name, lift in results["lifts"].items():
        low, high = lift["ci95"]
        print(f"lift {name:<28} {lift['whole']:+.1%} (95% CI {low:+.1%} .. {high:+.1%})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, seconds; the model part needs llama_cpp"
    )
    parser.add_argument("--test-items", type=int, help="held-out items (default 100; 3 with --smoke)")
    parser.add_argument(
        "--sizes", type=int, nargs=2, metavar=("FEW", "MANY"), help="taught inputs (100 1000)"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    sizes = sorted(args.sizes or ((10, 30) if args.smoke else (100, 1_000)))
    test_count = args.test_items or (3 if args.smoke else 100)

    from router.config.embedded import missing_requirement

    missing = missing_requirement("smollm2-135m")
    items = make_items(sizes[-1] + test_count, args.seed)
    pool, test = items[: sizes[-1]], items[sizes[-1] :]
    assert not {i.sentence for i in pool} & {i.sentence for i in test}, "the splits overlap"
    gold = {prompt_of(item): json.dumps(gold_of(item)) for item in items}
    large = StandIn("openai", model="gpt-4o")
    large.answer = lambda body: gold.get(body["messages"][-1]["content"], "{}")  # the teacher is right
    directory = Path(tempfile.mkdtemp(prefix="rightsize-teach-"))
    try:
        few_shot = {"enabled": True, "source": "logs"}
        small: dict[str, Any] = {"embedded": "smollm2-135m", "timeout": 180, "few_shot": few_shot}
        if missing is not None:  # teach still runs; its small tier is then a stand-in it never calls
            small = {"model": "ollama_chat/none", "api_base": "http://127.0.0.1:9", "few_shot": few_shot}
        config = config_dict(directory, large, small)
        config_path = directory / "rightsize.yaml"
        config_path.write_text(json.dumps(config, indent=2))
        taught = teach_all(directory, config_path, pool, sizes)
        counts = approved_counts(directory, [f"t{size}" for size in sizes])
        assert counts == {f"t{size}": 2 * size for size in sizes}, counts  # with and without the schema
        results: dict[str, Any] = {
            "task": "product+price+currency extraction to JSON (exact match)",
            "model": "SmolLM2-135M-Instruct Q4_1 (embedded llama.cpp, 1 thread, temperature 0)",
            "teacher": "OpenAI-compatible stand-in on loopback answering the gold JSON",
            "sizes": sizes,
            "test_items": len(test),
            "seed": args.seed,
            "max_answer_tokens": MAX_ANSWER_TOKENS,
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "teach": taught,
            "approved_exemplars": counts,
        }
        if missing is not None:
            print(f"SmolLM2 part skipped: {missing}", file=sys.stderr)
            results["skipped"] = missing
        else:
            started = time.perf_counter()
            runs = asyncio.run(measure(config, test, sizes, sum(counts.values())))
            results["serve_seconds"] = time.perf_counter() - started
            results |= summarise(runs, args.seed)
            results["load_average_1m"] = os.getloadavg()[0]
            results["examples"] = [
                {"prompt": prompt_of(item), "gold": gold_of(item), **{n: runs[n][i]["reply"] for n in runs}}
                for i, item in enumerate(test[:3])
            ]
            print_table(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    finally:
        large.kill()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
