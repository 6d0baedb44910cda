"""Sizing figures for README "Deployment and scale-out", measured on this machine.

    python scripts/deploy/sizing.py log-writer --rows 20000    # PostgreSQL rows/s through the batch writer
    python scripts/deploy/sizing.py log-read --rows 100000     # streaming 10^5 logged rows for retraining
    python scripts/deploy/sizing.py decisions --seconds 10     # Route decisions/s of one replica on one core

PostgreSQL: $RIGHTSIZE_TEST_PG_URL (`eval "$(scripts/ci_postgres.sh)"`); a fresh database is made and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from router.requestlog import LogRecord, RequestLogWriter, SpillFile, open_store, prompt_digest  # noqa: E402
from tests.router.requestlog.support import PG_URL_ENV, fresh_database  # noqa: E402


@contextmanager
def _database() -> Iterator[str]:
    admin = os.environ.get(PG_URL_ENV)
    if not admin:
        sys.exit(f'{PG_URL_ENV} is not set: eval "$(scripts/ci_postgres.sh)"')
    with fresh_database(admin, "sizing") as url:
        yield url


def _record(i: int, t0: datetime, distinct: int) -> LogRecord:
    prompt = f"logged prompt {i % distinct}: explain the trade-offs of design choice number {i % distinct}"
    return LogRecord(
        request_id=f"r{i:08d}", ts=t0 + timedelta(milliseconds=i), rpc="Route",
        prompt_sha256=prompt_digest(prompt), metadata={"tenant": "acme"}, prompt=prompt, score=(i % 97) / 97,
        threshold=0.5, rule="global", tier="small", model="m", classifier_version="v1", classify_ms=2.0,
        total_ms=3.0, replica_id="pod-0:50051",
    )  # fmt: skip


def log_writer(rows: int, threads: int) -> dict[str, float]:
    """Rows/s into PostgreSQL through RequestLogWriter, batch mode (one submitting thread) and strict mode
    (`threads` concurrent submitters, as concurrent calls are)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out: dict[str, float] = {}
    with _database() as url, tempfile.TemporaryDirectory() as tmp:
        for sync in ("batch", "strict"):
            store = open_store(url)
            store.migrate()
            offset = 0 if sync == "batch" else rows
            writer = RequestLogWriter(store, SpillFile(Path(tmp) / sync), sync=sync).start()
            records = [_record(offset + i, t0, rows) for i in range(rows)]
            started = time.perf_counter()
            if sync == "batch":
                for record in records:
                    writer.submit(record)
                assert writer.flush(600)
            else:
                parts = [records[n::threads] for n in range(threads)]
                workers = [threading.Thread(target=_submit_all, args=(writer, part)) for part in parts]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
            out[f"{sync}_rows_per_s"] = rows / (time.perf_counter() - started)
            writer.close()
            store.close()
    return out


def _submit_all(writer: RequestLogWriter, records: list[LogRecord]) -> None:
    for record in records:
        writer.submit(record)


def log_read(rows: int, distinct: int, retrain: bool) -> dict[str, float]:
    """Fill a log with `rows` labelled records, then read them the way `rightsize retrain` does (streamed
    through `iter_records` into `labelled_examples`): rows/s and the reader's peak memory."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with _database() as url:
        store = open_store(url)
        batch = 2000
        for start in range(0, rows, batch):
            store.write_batch([_record(i, t0, distinct) for i in range(start, min(rows, start + batch))])
        import psycopg

        with psycopg.connect(url) as conn:  # labels in bulk: set_label is one round trip per row
            conn.execute(
                "INSERT INTO labels (request_id, small_ok, source, updated_at)"
                " SELECT request_id, (abs(hashtext(request_id)) % 2)::smallint, 'judge', now() FROM requests"
            )
        store.close()
        script = (
            "import json, resource, sys, time\n"
            "from router.requestlog import open_store\n"
            "from router.learning.retrain import labelled_examples\n"
            "store = open_store(sys.argv[1]); store.migrate()\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "started = time.perf_counter()\n"
            "records = store.iter_records()\n"
            "examples = labelled_examples(list(records) if sys.argv[2] == 'list' else records)\n"
            "elapsed = time.perf_counter() - started\n"
            "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(json.dumps({'seconds': elapsed, 'examples': len(examples), 'rss_before_mb': before / 1024,"
            " 'rss_peak_mb': peak / 1024}))\n"
        )
        figures: dict[str, float] = {"rows": rows, **_target_share_read(url)}
        for how in ("streamed", "list"):  # as retrain reads now, and all records in memory at once
            result = subprocess.run(
                [sys.executable, "-c", script, url, how], capture_output=True, text=True, check=True, cwd=ROOT
            )
            read = json.loads(result.stdout)
            figures.update({f"{how}_{key}": value for key, value in read.items()})
            figures[f"{how}_rows_per_s"] = rows / read["seconds"]
        if retrain:
            figures.update(_retrain(url))
    return figures


def _target_share_read(url: str) -> dict[str, float]:
    """One target-share resolution's read (the newest 10,000 scores of the window): the indexed query the
    server uses, against scanning every record of the window as it did before."""
    from router.config.settings import TargetWindow
    from router.routing.thresholds import recent_scores

    store = open_store(url)
    window = TargetWindow(hours=24 * 365 * 100)  # every row is inside the window
    started = time.perf_counter()
    indexed = store.recent_scores(window.max_requests)
    indexed_s = time.perf_counter() - started
    started = time.perf_counter()
    scanned = recent_scores(store.iter_records(), window)
    scan_s = time.perf_counter() - started
    store.close()
    assert indexed == scanned
    return {"target_share_read_indexed_s": indexed_s, "target_share_read_scan_s": scan_s}


def _retrain(url: str) -> dict[str, float]:
    """`rightsize retrain --from-logs` on that log, as a user runs it: wall time and peak memory."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        shutil.copytree(ROOT / "models" / "default", models / "default")
        config = Path(tmp) / "config.yaml"
        config.write_text(json.dumps({
            "tiers": {"small": {"model": "ollama_chat/x"}, "large": {"model": "openai/gpt-4o"}},
            "models": {"dir": str(models)}, "log": {"url": url, "spill_dir": f"{tmp}/spill"},
        }))  # fmt: skip
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "router", "retrain", "--config", str(config), "--from-logs"]
            + ["--out", str(models / "candidates" / "sizing")],
            check=True, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"retrain_seconds": seconds, "retrain_peak_rss_mb": peak}


def decisions(seconds: float, clients: int) -> dict[str, float]:
    """Route decisions/s of one `rightsize serve` pinned to one core (taskset), scoring.threads 1, with the
    load generator on the other core."""
    import grpc

    from router._proto import router_pb2 as pb
    from router._proto import router_pb2_grpc as pb_grpc
    from tests.router.serve_process import ServeProcess

    verbs, nouns = ("design", "test", "explain", "debug"), ("cache", "queue", "parser", "index", "API")
    prompts = [
        f"Question {i}: how would you {verb} a {noun}?" for i, verb in enumerate(verbs) for noun in nouns
    ]
    with tempfile.TemporaryDirectory() as tmp:
        config = {
            "server": {"address": "127.0.0.1:0", "metrics_port": None},
            "tiers": {"small": {"model": "ollama_chat/x"}, "large": {"model": "openai/gpt-4o"}},
            "scoring": {"threads": 1},
            "log": {"url": f"sqlite:///{tmp}/requests.db", "spill_dir": f"{tmp}/spill"},
        }  # fmt: skip
        path = Path(tmp) / "config.yaml"
        path.write_text(json.dumps(config))
        serve = ServeProcess(path)
        os.sched_setaffinity(serve.process.pid, {0})
        os.sched_setaffinity(0, {1})
        try:
            address = serve.wait_for_line(r"serving rightsize\.v1\.Router on (\S+:\d+)").group(1)
            # Every thread of the server on core 0 (onnxruntime's and gRPC's are started by now).
            for task in os.listdir(f"/proc/{serve.process.pid}/task"):
                os.sched_setaffinity(int(task), {0})

            async def run() -> int:
                done = 0
                stop = time.monotonic() + seconds

                async def client(number: int) -> None:
                    nonlocal done
                    async with grpc.aio.insecure_channel(address) as channel:
                        stub = pb_grpc.RouterStub(channel)
                        i = number
                        while time.monotonic() < stop:
                            message = pb.Message(role="user", content=prompts[i % len(prompts)])
                            await stub.Route(pb.RouteRequest(messages=[message]), timeout=10)
                            done += 1
                            i += clients

                await asyncio.gather(*(client(n) for n in range(clients)))
                return done

            asyncio.run(run())  # warm-up, same length
            count = asyncio.run(run())
        finally:
            serve.stop()
    return {"decisions_per_s_one_core": count / seconds, "clients": clients, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    writer = commands.add_parser("log-writer")
    writer.add_argument("--rows", type=int, default=20_000)
    writer.add_argument("--threads", type=int, default=32)
    reader = commands.add_parser("log-read")
    reader.add_argument("--rows", type=int, default=100_000)
    reader.add_argument("--distinct", type=int, default=5_000, help="distinct prompts among the rows")
    reader.add_argument("--retrain", action="store_true", help="also time `rightsize retrain` on the log")
    route = commands.add_parser("decisions")
    route.add_argument("--seconds", type=float, default=10.0)
    route.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    if args.command == "log-writer":
        figures = log_writer(args.rows, args.threads)
    elif args.command == "log-read":
        figures = log_read(args.rows, args.distinct, args.retrain)
    else:
        figures = decisions(args.seconds, args.clients)
    figures["load_average_1m"] = os.getloadavg()[0]
    figures["max_rss_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({key: round(value, 3) for key, value in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
