"""/livez, /readyz and /metrics while the collector runs (real HTTP, real broker, moto)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import free_port
from tests.integration.test_pipeline import settings_for, topics, wait_for_count
from tests.integration.test_s3_faults import small_world

pytestmark = pytest.mark.integration


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_health_and_metrics_endpoints(aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    world = await asyncio.to_thread(small_world, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    port = free_port()
    settings = settings_for(
        aws_endpoint,
        kafka_bootstrap,
        topic,
        tmp_path,
        sections={"telemetry": {"metrics_port": port}},
        poll_interval_seconds=1,
    )
    telemetry = Telemetry()
    stop = asyncio.Event()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=telemetry))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        try:
            await wait_for_count(kafka_bootstrap, topic, world.records)
            assert await get(session, f"{base}/livez") == (200, "ok\n")
            assert await get(session, f"{base}/readyz") == (200, "ready\n")
            status, text = await get(session, f"{base}/metrics")
            assert status == 200
            assert f"ingester_records_total {float(world.records)}" in text
            assert 'ingester_objects_total{outcome="delivered"}' in text
            assert "ingester_shard_lag_seconds{" in text and "ingester_sink_send_seconds_count" in text
        finally:
            stop.set()
            await asyncio.wait_for(running, 60)
