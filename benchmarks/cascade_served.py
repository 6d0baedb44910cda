"""The cascade from outside: `rightsize serve` in cascade mode, the embedded SmolLM2 as the small tier, a
stand-in large tier that knows the right answers, on task items the repository's data does not hold.

    python benchmarks/cascade_served.py [--per-family 15] [--seed 20261203] [--teach] [--no-logprobs]
        [--json FILE] [--smoke]

Starts a stand-in OpenAI server (the large tier: it answers every prompt with its gold answer), writes a
config (the shipped classifier and answer head, `routing.mode: cascade`, `direct_large` 1.0 so every
prompt tries the small tier first, the embedded `smollm2-135m` small tier at its serve defaults), runs
`rightsize serve` as a child process, waits for its Complete health, and sends every item as a client
would: one gRPC Complete with the item's system and user messages and metadata tenant/task. Then it reads
the request log the server wrote and grades the small answer of every call (benchmarks/cascade_tasks.py).

Items: `make_items(--per-family, --seed)`, the eleven task families of cascade_tasks.py with a seed the
data files were not made with; prompts that also occur in benchmarks/data are counted and reported apart.
With `--teach`, few-shot is on with `approve_escalations` (the teacher loop: every escalated large answer
becomes an exemplar for later prompts of its task), and the report splits the stream in halves. With
`--no-logprobs` the answers are verified as a small tier without log-probabilities has them verified: form
checks and the consistency verifier (a second answer sampled at temperature 0.8), no confidence, no head.

Reported: the small model's accuracy; what the served cascade did (large share, final accuracy) against
random routing at the same large share (p + share * (1 - p)), with a 95 % bootstrap interval of the gain;
the quality-vs-large-share curve's APGR for the served verifier score, for prompt-only routing (the
decision score of the same calls) and the oracle; and the contract checks: `escalated`,
`escalation_reason` and `verifier_score` consistent with each other and with the log, every escalated
call in the log with both answers. Exits 1 when a contract check fails.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from benchmarks.cascade_tasks import TaskItem, grade, make_items  # noqa: E402
from classifier.data import Example  # noqa: E402
from classifier.evaluation import evaluate  # noqa: E402
from router._proto import router_pb2 as pb  # noqa: E402
from router._proto import router_pb2_grpc as pb_grpc  # noqa: E402
from router.requestlog import LogRecord, open_store  # noqa: E402
from tests.router.serve_process import ServeProcess  # noqa: E402
from tests.router.standins import StandIn  # noqa: E402
from tests.router.waiting import wait_until  # noqa: E402

DATA_DIR = ROOT / "benchmarks" / "data"
COMPLETE_HEALTH = "rightsize.v1.Router/Complete"
TENANT = "bench"


@dataclass
class Call:
    item: TaskItem
    response: pb.CompleteResponse
    record: LogRecord
    small_right: bool
    final_right: bool


def repo_prompts() -> set[str]:
    """Every prompt of the repository's cascade data files (to count overlap)."""
    prompts: set[str] = set()
    for path in DATA_DIR.glob("cascade_*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            prompts.update(json.loads(line)["prompt"] for line in handle if line.strip())
    return prompts


def config(
    large: StandIn, directory: Path, threshold: float, teach: bool, no_logprobs: bool = False
) -> dict[str, Any]:
    small: dict[str, Any] = {"embedded": "smollm2-135m", "timeout": 120}
    if teach:
        small["few_shot"] = {"enabled": True, "refresh_s": 1}
    return {
        "server": {"address": "127.0.0.1:0", "metrics_port": None, "grace_period_s": 5},
        "tiers": {
            "small": small,
            "large": {"model": "openai/gpt-4o", "api_base": large.url, "api_key": "sk-bench", "timeout": 30},
        },
        "routing": {
            "threshold": 0.5,
            "mode": "cascade",
            "cascade": {
                "direct_large": 1.0,  # every prompt tries the small tier: the verifiers decide
                "head": {"threshold": threshold},
                "approve_escalations": teach,
                # What a small tier without log-probabilities gets: confidence and head cannot run (so
                # nothing asks for them), the consistency verifier's second sample decides.
                **(
                    {
                        "confidence": {"enabled": False},
                        "head": {"enabled": False},
                        "consistency": {"enabled": True},
                    }
                    if no_logprobs
                    else {}
                ),
            },
        },
        "log": {
            "url": f"sqlite:///{directory / 'requests.db'}",
            "spill_dir": str(directory / "spill"),
            "flush_interval_ms": 50,
        },
    }


def wait_serving(channel: grpc.Channel, timeout_s: float) -> None:
    stub = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=COMPLETE_HEALTH), timeout=5)
        except grpc.RpcError:
            return False  # still starting
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    try:
        wait_until(serving, timeout_s)
    except AssertionError:
        raise SystemExit(f"the server's {COMPLETE_HEALTH} was not SERVING within {timeout_s:.0f} s") from None


def logged(url: str, request_ids: list[str], timeout_s: float = 30) -> dict[str, LogRecord]:
    store = open_store(url)
    try:
        try:
            wait_until(lambda: all(store.get(rid) is not None for rid in request_ids), timeout_s)
        except AssertionError:
            missing = [rid for rid in request_ids if store.get(rid) is None]
            raise SystemExit(
                f"{len(missing)} calls never reached the request log, e.g. {missing[:3]}"
            ) from None
        return {rid: record for rid in request_ids if (record := store.get(rid)) is not None}
    finally:
        store.close()


def contract_problems(call: Call) -> list[str]:
    """What is inconsistent in one call's three fields, its text and its log row."""
    r, record, problems = call.response, call.record, []
    if r.decision.mode != "cascade":
        problems.append(f"decision.mode {r.decision.mode!r}")
    if not (0.0 <= r.verifier_score <= 1.0 or r.verifier_score == -1.0):
        problems.append(f"verifier_score {r.verifier_score}")
    if record.escalated is not r.escalated:
        problems.append("log and response disagree on escalated")
    if r.escalated:
        if not r.escalation_reason:
            problems.append("escalated without a reason")
        if r.text != call.item.gold:
            problems.append("escalated but not the large tier's answer")
        if not record.small_response or record.response != r.text:
            problems.append("escalated call without both answers in the log")
    else:
        if r.escalation_reason and not r.escalation_reason.startswith("unverified"):
            problems.append(f"kept with a reason: {r.escalation_reason!r}")
        if r.text != record.small_response:
            problems.append("kept, but the text is not the logged small answer")
    return problems


def apgr(order: np.ndarray, small_right: np.ndarray) -> float:
    """APGR of escalating in `order` (higher first), the large tier always right."""
    examples = [
        Example(text="", small_ok=int(s), small_score=float(s), large_score=1.0, scale="correct01")
        for s in small_right
    ]
    return round(float(evaluate(order, examples).apgr), 4)


def summarise(calls: list[Call], seen: set[str], boot: int, seed: int) -> dict[str, Any]:
    small = np.array([c.small_right for c in calls], dtype=np.float64)
    final = np.array([c.final_right for c in calls], dtype=np.float64)
    escalated = np.array([c.response.escalated for c in calls], dtype=np.float64)
    score = np.array([c.response.verifier_score for c in calls])
    prompt_score = np.array([c.response.decision.score for c in calls])

    def served(index: np.ndarray) -> dict[str, float]:
        p, share, acc = small[index].mean(), escalated[index].mean(), final[index].mean()
        return {"small": p, "share": share, "final": acc, "random": p + share * (1.0 - p)}

    every = np.arange(len(calls))
    point = served(every)
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(boot):
        sample = served(rng.integers(0, len(calls), len(calls)))
        gains.append(sample["final"] - sample["random"])
    unseen = np.array([c.item.prompt not in seen for c in calls])
    # The verifier's P(good): low first; a verifier that did not run (-1) sorts as undecided (0.5).
    order = 1.0 - np.where(score < 0, 0.5, score)
    orders = {
        "random": rng.random(len(calls)),
        "prompt-only (decision score)": prompt_score,
        "served verifier score": order,
        "oracle": 1.0 - small,
    }
    resampled: dict[str, list[float]] = {name: [] for name in orders}
    for _ in range(boot):
        sample = rng.integers(0, len(calls), len(calls))
        for name, values in orders.items():
            if name == "random":
                values = rng.random(len(calls))
            resampled[name].append(apgr(values[sample], small[sample]))
    out: dict[str, Any] = {
        "calls": len(calls),
        "prompts_also_in_repo_data": int((~unseen).sum()),
        "small_accuracy": round(point["small"], 4),
        "served": {
            "large_share": round(point["share"], 4),
            "final_accuracy": round(point["final"], 4),
            "random_at_same_share": round(point["random"], 4),
            "gain_over_random": round(point["final"] - point["random"], 4),
            "gain_95": [round(float(np.percentile(gains, q)), 4) for q in (2.5, 97.5)] if gains else None,
            "wrong_kept": round(
                float(((escalated == 0) & (small == 0)).sum() / max((small == 0).sum(), 1)), 4
            ),
            "right_escalated": round(float(((escalated == 1) & (small == 1)).sum() / max(small.sum(), 1)), 4),
        },
        "apgr": {
            name: round(float(np.mean(resampled[name])), 4) if name == "random" and boot else apgr(o, small)
            for name, o in orders.items()
        },  # random: the mean over the resamples' fresh random orders
        "apgr_95": {
            name: [round(float(np.percentile(values, q)), 4) for q in (2.5, 97.5)] if values else None
            for name, values in resampled.items()
        },
        "unseen_prompts_only": {
            "calls": int(unseen.sum()),
            "served verifier score apgr": apgr(order[unseen], small[unseen]) if unseen.sum() > 1 else None,
        },
        "by_family": {},
        "decided_by": {},
    }
    for family in sorted({c.item.family for c in calls}):
        index = np.array([i for i, c in enumerate(calls) if c.item.family == family])
        figures = served(index)
        out["by_family"][family] = {k: round(float(v), 3) for k, v in figures.items()}
    for call in calls:
        checks = json.loads(call.record.verifier_inputs or "{}").get("checks", {})
        failed = [name for name, (outcome, _) in checks.items() if outcome == "fail"]
        key = failed[0] if failed else "kept"
        out["decided_by"][key] = out["decided_by"].get(key, 0) + 1
    return out


def halves(calls: list[Call]) -> dict[str, Any]:
    """The teacher loop's figures: the stream's first and second half."""
    middle = len(calls) // 2
    out = {}
    for name, part in (("first half", calls[:middle]), ("second half", calls[middle:])):
        out[name] = {
            "escalation_rate": round(float(np.mean([c.response.escalated for c in part])), 4),
            "small_accuracy": round(float(np.mean([c.small_right for c in part])), 4),
            "final_accuracy": round(float(np.mean([c.final_right for c in part])), 4),
            "with_exemplars": round(float(np.mean([len(c.response.exemplar_ids) > 0 for c in part])), 4),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-family", type=int, default=15)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--threshold", type=float, default=0.5, help="the head's routing.cascade threshold")
    parser.add_argument("--teach", action="store_true", help="few-shot on, escalations approved as exemplars")
    parser.add_argument(
        "--no-logprobs",
        action="store_true",
        help="verify as for a small tier without log-probabilities: form and consistency only",
    )
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoke", action="store_true", help="one item per family, 100 resamples")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the config and request log in this new directory (for rightsize report / simulate)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.per_family, args.boot = 1, 100

    items = make_items(args.per_family, args.seed)
    gold = {item.prompt: item.gold for item in items}
    large = StandIn("openai", reply="I do not know.")
    large.answer = lambda body: gold.get(body["messages"][-1]["content"], "I do not know.")
    calls: list[Call] = []
    if args.keep is not None and args.keep.exists():
        raise SystemExit(f"--keep: {args.keep} exists; give a new directory")
    with tempfile.TemporaryDirectory(prefix="rightsize-cascade-served-") as scratch:
        directory = Path(scratch) if args.keep is None else args.keep.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        config_path = directory / "router.yaml"
        config_path.write_text(
            json.dumps(config(large, directory, args.threshold, args.teach, args.no_logprobs))
        )  # JSON is YAML
        server = ServeProcess(config_path)
        try:
            address = server.wait_for_line(r"serving rightsize\.v1\.Router on (\S+:\d+)", 60).group(1)
            responses: list[tuple[TaskItem, pb.CompleteResponse]] = []
            started = time.perf_counter()
            with grpc.insecure_channel(address) as channel:
                wait_serving(channel, 180)
                stub = pb_grpc.RouterStub(channel)
                for number, item in enumerate(items):
                    request = pb.CompleteRequest(
                        messages=[
                            pb.Message(role="system", content=item.system),
                            pb.Message(role="user", content=item.prompt),
                        ],
                        metadata={"tenant": TENANT, "task": item.family},
                        request_id=f"item-{number}",
                    )
                    responses.append((item, stub.Complete(request, timeout=300)))
                    if (number + 1) % 25 == 0:
                        escalated = sum(r.escalated for _, r in responses)
                        print(f"{number + 1}/{len(items)} escalated so far {escalated}", flush=True)
            elapsed = time.perf_counter() - started
            records = logged(
                f"sqlite:///{directory / 'requests.db'}", [f"item-{n}" for n in range(len(items))]
            )
        finally:
            server.stop()
            large.kill()
    for number, (item, response) in enumerate(responses):
        record = records[f"item-{number}"]
        small_answer = record.small_response or ""
        calls.append(Call(item, response, record, grade(item, small_answer), grade(item, response.text)))
    problems = {f"item-{n}": p for n, c in enumerate(calls) if (p := contract_problems(c))}
    results = summarise(calls, repo_prompts(), args.boot, args.seed)
    results.update(
        {
            "seed": args.seed,
            "per_family": args.per_family,
            "head_threshold": args.threshold,
            "teach": args.teach,
            "no_logprobs": args.no_logprobs,
            "seconds": round(elapsed, 1),
            "contract_problems": problems,
        }
    )
    if args.teach:
        results["halves"] = halves(calls)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if problems:
        print(f"contract problems in {len(problems)} calls", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
