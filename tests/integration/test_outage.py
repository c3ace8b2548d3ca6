"""A Kafka outage longer than the producer's request timeout stalls the pipeline, with bounded memory and no
more S3 reads than the in-flight bound, and the collector resumes and delivers everything when Kafka returns.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.infra.fault_proxy import FaultProxy
from tests.infra.kafka_broker import KafkaBroker
from tests.integration.test_crash import big_world, report, settled_objects, start_collector, write_config
from tests.integration.test_pipeline import event_ids, topics

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 20
MAX_INFLIGHT_OBJECTS = 8


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_kafka_outage_stalls_with_bounded_memory_then_resumes(
    aws_endpoint: str, kafka_broker: KafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(big_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    proxy = FaultProxy(aws_endpoint)
    await proxy.start()
    config = write_config(tmp_path, proxy.endpoint, kafka_bootstrap, topic)
    text = config.read_text().replace("linger_ms = 5", "linger_ms = 5\nrequest_timeout_ms = 3000")
    # One collector process, so the RSS sampled below is the whole pipeline's.
    config.write_text(text.replace("max_inflight_objects = 8", "max_inflight_objects = 8\nworkers = 1"))
    process = start_collector(config, tmp_path / "collector.log")
    try:
        while settled_objects(tmp_path) < 100:
            assert process.poll() is None, (tmp_path / "collector.log").read_text()[-3000:]
            await asyncio.sleep(0.2)
        await asyncio.to_thread(kafka_broker.stop)
        await asyncio.sleep(5)  # in-flight sends time out (3 s) and start retrying
        gets_before, settled_before, rss_before = proxy.gets, settled_objects(tmp_path), rss_mb(process.pid)
        samples = []
        deadline = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, "the collector must wait for Kafka, not exit"
            samples.append(rss_mb(process.pid))
            await asyncio.sleep(0.5)
        gets_during, settled_during = proxy.gets - gets_before, settled_objects(tmp_path) - settled_before
        await asyncio.to_thread(kafka_broker.start)
        assert await asyncio.to_thread(process.wait, 300) == 0, (tmp_path / "collector.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
        await proxy.stop()

    print(
        f"outage {OUTAGE_SECONDS} s: S3 GETs during it {gets_during}, objects settled during it {settled_during}, "
        f"RSS {rss_before:.0f} MB -> max {max(samples):.0f} MB"
    )
    assert settled_during == 0
    assert gets_during <= 2 * MAX_INFLIGHT_OBJECTS, "listing and fetching must stop while Kafka is down"
    assert max(samples) - rss_before < 50
    missing, _ = report("after the outage", world, await event_ids(kafka_bootstrap, topic))
    assert missing == 0
