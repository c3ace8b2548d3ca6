"""SIGTERM drains in order (stop listing, finish in-flight objects, commit) and exits 0; a second SIGTERM
exits at once. Either way, a restart delivers the rest and nothing is missing."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.integration.test_crash import big_world, report, settled_objects, start_collector, write_config
from tests.integration.test_pipeline import event_ids, topics

pytestmark = pytest.mark.integration


async def wait_for_progress(path: Path, minimum: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while settled_objects(path) < minimum:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {minimum} objects settled after {timeout_s} s")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm-drains", "second-sigterm-exits-at-once"])
async def test_sigterm_then_restart_loses_nothing(
    signals: int, aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(big_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    config = write_config(tmp_path, aws_endpoint, kafka_bootstrap, topic)
    log = tmp_path / "collector.log"
    process = start_collector(config, log, once=False)
    await wait_for_progress(tmp_path, 50)
    for _ in range(signals):
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
    started = time.monotonic()
    code = await asyncio.to_thread(process.wait, 60)
    drain_seconds = time.monotonic() - started
    if signals == 1:
        assert code == 0, log.read_text()[-3000:]
        assert "draining" in log.read_text()
    else:
        assert code == 128 + signal.SIGTERM
    settled_at_stop = settled_objects(tmp_path)
    assert settled_at_stop < world.files, "the run finished before the signal: make the dataset larger"

    final = start_collector(config, log)
    assert await asyncio.to_thread(final.wait, 300) == 0, log.read_text()[-3000:]
    missing, _ = report(
        f"{signals} SIGTERM(s) after {settled_at_stop} objects, exit in {drain_seconds:.1f} s",
        world,
        await event_ids(kafka_bootstrap, topic),
    )
    assert missing == 0
