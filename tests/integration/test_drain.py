"""A Kafka outage is visible, and SIGTERM during it still exits within ``drain_timeout_seconds``.

The collector runs as a real subprocess against moto and the real broker; the broker is stopped mid-run:
- /readyz turns 503 naming the stalled sink, ``ingester_sink_stalled_seconds`` grows, and the shards' lag keeps
  growing instead of freezing at its last value;
- SIGTERM then exits within the drain timeout with code 7 (DrainTimeoutError);
- once the broker is back, a restart delivers everything: nothing acknowledged was lost.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.infra.kafka_broker import KafkaBroker, free_port
from tests.integration.test_crash import big_world, report, settled_objects, start_collector, write_config
from tests.integration.test_pipeline import event_ids, topics

pytestmark = pytest.mark.integration

DRAIN_SECONDS = 12


async def scrape(port: int) -> tuple[int, str, dict[str, float]]:
    """/readyz status and body, and the metrics as name{labels} -> value."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            status, body = response.status, await response.text()
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    metrics = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metrics[name] = float(value)
    return status, body, metrics


def max_lag(metrics: dict[str, float]) -> float:
    return max((v for k, v in metrics.items() if k.startswith("ingester_shard_lag_seconds{")), default=0.0)


# exactly_once is not covered: during an outage its open transaction waits in ways this test has not pinned
# down yet (seen: /readyz stays 200 with no unit in flight); docs/operations.md "Faults and isolation" says so.
@pytest.mark.parametrize("delivery", ["at_least_once"])
async def test_outage_is_visible_and_sigterm_exits_within_the_drain_timeout(
    delivery: str, aws_endpoint: str, kafka_broker: KafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(big_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    port = free_port()
    config = write_config(
        tmp_path,
        aws_endpoint,
        kafka_bootstrap,
        topic,
        delivery,
        collection={"workers": 1, "drain_timeout_seconds": DRAIN_SECONDS, "poll_interval_seconds": 2},
        sections=f"metrics_port = {port}\nstall_seconds = 3\n",
    )
    config.write_text(config.read_text().replace("linger_ms = 5", "linger_ms = 5\nrequest_timeout_ms = 2000"))
    log = tmp_path / "collector.log"
    process = start_collector(config, log, once=False)
    try:
        deadline = time.monotonic() + 90
        while (await _progress(tmp_path, topic, kafka_bootstrap, delivery)) < 50:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no progress"
            await asyncio.sleep(0.3)
        status, _, _ = await scrape(port)
        assert status == 200
        await asyncio.to_thread(kafka_broker.stop)
        await _stall_is_visible(port)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.to_thread(process.wait, DRAIN_SECONDS + 30)
        exit_seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
        await asyncio.to_thread(kafka_broker.start)
    text = log.read_text()
    print(f"{delivery}: SIGTERM during the outage -> exit {code} after {exit_seconds:.1f} s")
    assert exit_seconds <= DRAIN_SECONDS + 3, text[-3000:]  # + interpreter start-up/teardown
    assert code == 7 and "DrainTimeoutError" in text, text[-3000:]

    final = start_collector(config, log)
    assert await asyncio.to_thread(final.wait, 300) == 0, log.read_text()[-3000:]
    missing, duplicates = report(f"{delivery} after the outage", world, await event_ids(kafka_bootstrap, topic))
    assert missing == 0
    if delivery == "exactly_once":
        assert duplicates == 0


async def _stall_is_visible(port: int) -> None:
    """/readyz turns 503 naming the stall, the stall gauge grows, and so does the lag."""
    deadline = time.monotonic() + 60
    while True:
        status, body, metrics = await scrape(port)
        if status == 503 and "sink stalled" in body:
            break
        assert time.monotonic() < deadline, f"readyz never showed the stall: {status} {body}"
        await asyncio.sleep(0.5)
    assert metrics["ingester_sink_stalled_seconds"] >= 3
    lag_before = max_lag(metrics)
    await asyncio.sleep(2.5)
    _, _, later = await scrape(port)
    assert max_lag(later) >= lag_before + 2, "the lag must keep growing while nothing is delivered"
    assert later["ingester_sink_stalled_seconds"] > metrics["ingester_sink_stalled_seconds"]


async def _progress(path: Path, topic: str, bootstrap: str, delivery: str) -> int:
    if delivery == "at_least_once":
        return settled_objects(path)
    from tests.integration.test_crash import progress

    return await progress(bootstrap, topic, path, delivery)
