"""kill -9 in the middle of a load: strict mode loses nothing acknowledged, batch mode stays in its window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from router.requestlog import RequestLogWriter, SpillFile, open_store

ROOT = Path(__file__).resolve().parents[3]
QUEUE_SIZE, BATCH_SIZE = 500, 50

# The child logs requests as fast as it can and prints each request number once `submit` has returned,
# which is when a server would send the response. While the file `down` exists its store fails, so
# strict mode has to spill (and fsync) instead.
CHILD = textwrap.dedent(
    f"""
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from router.requestlog import LogRecord, RequestLogWriter, SpillFile, StoreUnavailableError, open_store

    url, spill_dir, sync, flag = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    store = open_store(url)
    store.migrate()

    class Sink:
        def write_batch(self, records):
            if flag.exists():
                raise StoreUnavailableError("down")
            store.write_batch(records)

    writer = RequestLogWriter(
        Sink(), SpillFile(spill_dir), sync=sync, queue_size={QUEUE_SIZE}, batch_size={BATCH_SIZE},
        flush_interval_ms=20, retry_interval_s=0.05, max_retry_interval_s=0.1,
    ).start()
    for i in range(10_000_000):
        now = datetime.now(UTC)
        writer.submit(LogRecord(request_id=f"k-{{i:08d}}", ts=now, rpc="Route", prompt_sha256="0"))
        print(i, flush=True)
    """
)


@pytest.mark.parametrize("sync", ["strict", "batch"])
def test_kill_9_loses_at_most_the_documented_window(store_url: str, tmp_path: Path, sync: str) -> None:
    script, spill_dir, flag = tmp_path / "child.py", tmp_path / "spill", tmp_path / "down"
    script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(script), store_url, str(spill_dir), sync, str(flag)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    acknowledged: list[int] = []
    deadline = time.monotonic() + 20
    for line in child.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) == 300:
            flag.touch()  # store outage: later records go to the spill file
        if len(acknowledged) == 600 or time.monotonic() > deadline:
            os.kill(child.pid, signal.SIGKILL)
            break
    acknowledged += [int(line) for line in child.stdout]  # printed before the kill landed
    child.stdout.close()
    child.wait(timeout=10)
    assert len(acknowledged) >= 600

    if sync == "strict":
        assert any(spill_dir.glob("spill-*.jsonl")), "the outage should have made the child spill"

    # Restart: the new writer replays what the killed one spilled.
    flag.unlink()
    store = open_store(store_url)
    try:
        assert RequestLogWriter(store, SpillFile(spill_dir)).start().close(timeout=10)
        stored = {int(record.request_id[2:]) for record in store.iter_records()}
    finally:
        store.close()

    lost = set(acknowledged) - stored
    if sync == "strict":
        assert lost == set()
    else:
        assert len(lost) <= QUEUE_SIZE + BATCH_SIZE
    assert stored <= set(range(max(acknowledged) + 2))  # nothing invented; at most one unacknowledged extra
