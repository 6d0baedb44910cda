"""Live reload of a config mounted from a Kubernetes ConfigMap: the kubelet swaps the `..data` symlink, and a
running server (real, on port 0) applies the new file, also when the new file has the old one's size and
modification time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from router.config.reload import POLL_INTERVAL_S, ConfigSource
from router.rpc.server import RouterServer, create_server
from tests.deploy.cluster import ConfigMapMount
from tests.router.standins import StandIn
from tests.router.support import Backends, KeyedScorer, config_dict, log_section


@pytest.fixture
async def mounted(tmp_path: Path) -> AsyncIterator[tuple[ConfigMapMount, RouterServer, dict[str, Any]]]:
    backends = Backends(StandIn("ollama"), StandIn("openai"))
    config = {**config_dict(backends, threshold=0.5), **log_section(tmp_path)}
    mount = ConfigMapMount(tmp_path / "etc-rightsize")
    mount.write(config)
    assert mount.path.is_symlink() and (mount.directory / "..data").is_symlink()
    source = ConfigSource(mount.path)
    server, _ = create_server(source.load(), scorer=KeyedScorer(default=0.2), source=source)
    await server.start()
    try:
        yield mount, server, config
    finally:
        await server.stop(0)
        backends.small.kill()
        backends.large.kill()


async def _threshold_becomes(server: RouterServer, value: float) -> float:
    """Seconds until the served config has routing.threshold == value (AssertionError after 10 s)."""
    started = time.monotonic()
    while server.pipeline.config.routing.threshold != value:
        assert time.monotonic() - started < 10, "the ConfigMap update was not applied"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_configmap_update_is_applied_live(
    mounted: tuple[ConfigMapMount, RouterServer, dict[str, Any]],
) -> None:
    mount, server, config = mounted
    old_target = (mount.directory / "..data").resolve()
    mount.write({**config, "routing": {"threshold": 0.7}})
    assert not old_target.exists()  # the kubelet removes the previous payload directory
    took = await _threshold_becomes(server, 0.7)
    assert took < POLL_INTERVAL_S + 2


async def test_a_swap_to_a_file_of_the_same_size_and_mtime_is_applied(
    mounted: tuple[ConfigMapMount, RouterServer, dict[str, Any]],
) -> None:
    """A payload restored with its timestamps (cp -p, tar, rsync -t) and the same length as the old file."""
    mount, server, config = mounted
    stat = mount.path.stat()
    mount.write({**config, "routing": {"threshold": 0.9}}, mtime_ns=stat.st_mtime_ns)  # "0.5" -> "0.9"
    assert (mount.path.stat().st_size, mount.path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    await _threshold_becomes(server, 0.9)
