"""What the cascade tests share: reading a served call's request-log row."""

from __future__ import annotations

from router.requestlog import LogRecord, open_store
from tests.router.conftest import Running
from tests.router.waiting import wait_until


def logged(running: Running, request_id: str) -> LogRecord:
    """The request-log row of `request_id`, once the server's writer has stored it."""
    store = open_store(running.server.config.log.url)
    try:
        wait_until(lambda: store.get(request_id) is not None, timeout_s=10)
        record = store.get(request_id)
        assert record is not None
        return record
    finally:
        store.close()
