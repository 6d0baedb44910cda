"""Run every benchmark, one after another (they must not compete for the 2 cores), and print their tables.

python benchmarks/run_all.py            # full sizes; JSON results go to benchmarks/results/
python benchmarks/run_all.py --smoke    # tiny sizes (CI), results to a temporary directory
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# (script, needs, extra arguments) — a benchmark whose optional extra is missing is reported as skipped.
BENCHMARKS: list[tuple[str, str | None, list[str]]] = [
    ("bench_classifier.py", None, []),
    ("bench_service.py", None, []),  # prints issue 20's ratios: overhead, throughput, against torch
    ("bench_warmup.py", None, []),  # the first seconds after SERVING, on the defaults
    ("bench_service.py", None, ["--embedder", "fp32"]),  # the fp32 embedder (int8 serves by default)
    ("bench_service.py", None, ["--speculative"]),  # routing.speculative_small
    ("bench_http.py", None, []),  # the OpenAI-compatible door against gRPC
    ("bench_footprint.py", None, []),
    ("bench_local.py", "llama_cpp", []),
    ("bench_fewshot.py", "llama_cpp", []),
    ("teach.py", None, []),  # rightsize teach, then SmolLM2 with its exemplars (skipped without llama_cpp)
    ("learning_curve.py", None, []),
    ("cascade.py", None, []),  # offline: the shipped answers, no model run
    ("bench_cascade_service.py", None, []),  # what the cascade's verifiers and an escalation cost in time
    ("cascade_served.py", "llama_cpp", []),  # rightsize serve in cascade mode, the embedded SmolLM2, graded
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the benchmark code alive")
    parser.add_argument("--only", nargs="*", help="run only these scripts")
    args = parser.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="rightsize-bench-")) if args.smoke else ROOT / "results"
    out_dir.mkdir(exist_ok=True)
    failures = []
    for script, needs, extra in BENCHMARKS:
        if args.only and script not in args.only:
            continue
        if not (ROOT / script).is_file():
            continue
        if needs is not None and importlib.util.find_spec(needs) is None:
            print(f"== {script}: skipped ({needs} not installed)")
            continue
        command = [
            sys.executable,
            str(ROOT / script),
            "--json",
            str(
                out_dir
                / (script.removesuffix(".py") + "".join(f"_{a.lstrip('-')}" for a in extra[-1:]) + ".json")
            ),
            *extra,
        ]
        if args.smoke:
            command.append("--smoke")
        print(f"== {' '.join([script, *extra])}", flush=True)
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT.parent, check=False)
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
        if result.returncode != 0:
            failures.append(script)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    print(f"results in {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
