"""/livez, /readyz and /metrics while the collector runs, alone or as worker processes (real HTTP, broker, moto)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingester.demo.world import World, build_organization, upload_logs
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import free_port
from tests.integration.test_crash import start_collector, write_config
from tests.integration.test_pipeline import REGIONS, START, settings_for, topics, wait_for_count
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


def worker_pids(parent: int) -> list[int]:
    """The worker processes (spawned: ``spawn_main``; not multiprocessing's resource tracker), oldest first."""
    children = [int(pid) for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
    return sorted(pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes())


def by_worker(text: str, name: str, **labels: str) -> dict[str, float]:
    """``name``'s samples with ``labels``, by their worker label."""
    return {
        sample.labels["worker"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    }


async def test_one_port_shows_every_worker_process(aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    """``run --workers 2``: the pod's one port serves both workers' series (their sum is the whole) and probes
    that see both: a worker whose loop is stopped makes /livez and /readyz 503, naming it."""

    def world_of_eight_shards() -> World:
        world = build_organization(aws_endpoint, members=3)
        upload_logs(world, accounts=world.accounts, regions=REGIONS, start=START, days=1, files_per_hour=1)
        return world

    world = await asyncio.to_thread(world_of_eight_shards)
    topic = await topics(kafka_bootstrap)
    port = free_port()
    config = write_config(
        tmp_path,
        aws_endpoint,
        kafka_bootstrap,
        topic,
        collection={"workers": 2, "poll_interval_seconds": 2},
        sections=f"metrics_port = {port}\n",
    )
    process = start_collector(config, tmp_path / "collector.log", once=False)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_for_count(kafka_bootstrap, topic, world.records, timeout_s=180)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:  # the workers count an object once Kafka acknowledged it: the figures follow the topic
                status, text = await get(session, f"{base}/metrics")
                delivered = by_worker(text, "ingester_objects_total", outcome="delivered")
                if sum(delivered.values()) >= world.files or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert status == 200
            assert sum(delivered.values()) == world.files, (delivered, world.files)
            assert set(delivered) == {"1/2", "2/2"}
            assert sum(by_worker(text, "ingester_records_total").values()) == world.records
            assert sum(by_worker(text, "ingester_shards").values()) == len(world.accounts) * len(REGIONS)
            assert by_worker(text, "ingester_worker_up") == {"1/2": 1.0, "2/2": 1.0}
            assert set(by_worker(text, "ingester_sink_send_seconds_count")) == {"1/2", "2/2"}
            assert await get(session, f"{base}/readyz") == (200, "ready\n")
            assert await get(session, f"{base}/livez") == (200, "ok\n")

            stuck = worker_pids(process.pid)[1]  # started second: worker 2/2
            os.kill(stuck, signal.SIGSTOP)
            try:
                status, body = await get(session, f"{base}/livez")
                assert (status, body) == (503, "worker 2/2: no answer within 2 s (event loop stuck?)\n")
                status, body = await get(session, f"{base}/readyz")
                assert (status, body) == (503, "worker 2/2: no answer within 2 s (event loop stuck?)\n")
                status, text = await get(session, f"{base}/metrics")
                assert by_worker(text, "ingester_worker_up") == {"1/2": 1.0, "2/2": 0.0}
                assert set(by_worker(text, "ingester_objects_total", outcome="delivered")) == {"1/2"}
            finally:
                os.kill(stuck, signal.SIGCONT)
            assert await get(session, f"{base}/readyz") == (200, "ready\n")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0, (tmp_path / "collector.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
