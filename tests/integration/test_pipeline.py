"""The whole pipeline against a real Kafka broker and moto's HTTP server: discovery -> S3 -> Kafka.

An organization of 3 accounts x 2 regions x 2 days of generated files; every record must arrive exactly once
(read back from the topic), a restart must send nothing, and a trail created while the collector runs must be
picked up by the next discovery pass.
"""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingester import config as config_mod
from ingester.demo.world import World, add_account_trail, build_organization, client, member_credentials, upload_logs
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import create_topic, read_all

pytestmark = pytest.mark.integration

REGIONS = ("us-east-1", "eu-west-1")
START = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def settings_for(
    endpoint: str,
    bootstrap: str,
    topic: str,
    tmp_path: Path,
    *,
    sections: dict[str, dict[str, Any]] | None = None,
    **collection: Any,
) -> Any:
    """Test settings; ``collection`` overrides that section, ``sections`` any other."""
    return config_mod.build(
        {
            "aws": {"endpoint_url": endpoint},
            "discovery": {"mode": "organization", "regions": list(REGIONS), "interval_seconds": 1},
            "collection": {"start_time": START.isoformat(), **collection},
            "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "dead_letter_topic": f"{topic}-dlq"},
            "checkpoint": {"path": str(tmp_path / "checkpoints.sqlite")},
            **(sections or {}),
        }
    )


async def topics(bootstrap: str) -> str:
    topic = f"cloudtrail-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, partitions=4)
    await create_topic(bootstrap, f"{topic}-dlq", partitions=1)
    return topic


async def event_ids(bootstrap: str, topic: str) -> list[str]:
    """The message keys: every output format keys a record by its deterministic event id."""
    return [record.key.decode() for record in await read_all(bootstrap, topic, 60) if record.key is not None]


def org_with_logs(endpoint: str) -> World:
    world = build_organization(endpoint, members=2)
    upload_logs(
        world,
        accounts=world.accounts,
        regions=REGIONS,
        start=START,
        days=2,
        files_per_hour=2,
        records_per_file=(1, 40),
        collect_ids=True,
    )
    return world


async def test_organization_to_kafka_exactly_once_then_restart_sends_nothing(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(org_with_logs, aws_endpoint)
    assert len(world.accounts) == 3 and world.files == 3 * 2 * 2 * 24 * 2
    topic = await topics(kafka_bootstrap)
    settings = settings_for(aws_endpoint, kafka_bootstrap, topic, tmp_path)

    first = await run(settings, stop=asyncio.Event(), once=True)

    assert first.objects_delivered == world.files
    assert first.records == world.records
    assert first.dead_letters == 0
    seen = await event_ids(kafka_bootstrap, topic)
    duplicates = [key for key, count in collections.Counter(seen).items() if count > 1]
    assert duplicates == []
    assert sorted(seen) == sorted(world.event_ids)

    second = await run(settings, stop=asyncio.Event(), once=True)

    assert (second.objects_delivered, second.records) == (0, 0)
    assert len(await event_ids(kafka_bootstrap, topic)) == world.records


async def test_one_accounts_events_share_a_partition_in_time_order(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Also: with sink.ocsf_raw_data = false the events reach Kafka without the original record."""
    world = await asyncio.to_thread(org_with_logs, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    lean = {"sink": {"format": "ocsf", "ocsf_raw_data": False}}
    await run(
        settings_for(aws_endpoint, kafka_bootstrap, topic, tmp_path, sections=lean), stop=asyncio.Event(), once=True
    )

    partitions: dict[str, set[int]] = collections.defaultdict(set)
    for record in await read_all(kafka_bootstrap, topic, 60):
        assert record.key is not None and record.value is not None
        event = json.loads(record.value)
        assert "raw_data" not in event and event["metadata"]["uid"] and event["api"]["operation"]
        account = record.key.decode().split(":", 1)[0]
        partitions[account].add(record.partition)
        headers = dict(record.headers)
        assert headers["account"] == account.encode() and headers["region"].decode() in REGIONS
        assert headers["class"] in (b"6003", b"3002", b"3001") and headers["eventName"]
        assert headers["eventSource"].endswith(b".amazonaws.com")
    assert set(partitions) == set(world.accounts)
    assert all(len(found) == 1 for found in partitions.values()), partitions


async def test_trail_created_while_running_is_collected(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(org_with_logs, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    settings = settings_for(aws_endpoint, kafka_bootstrap, topic, tmp_path, poll_interval_seconds=1)
    stop = asyncio.Event()
    telemetry = Telemetry()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=telemetry))
    try:
        await wait_for_count(kafka_bootstrap, topic, world.records)
        org_shards = telemetry.shards
        assert org_shards == len(world.accounts) * len(REGIONS)
        member = next(a for a in world.accounts if a != world.management_account)

        def add_trail() -> None:
            add_account_trail(world, member, name="team-trail", bucket="team-trail-logs")
            upload_logs(
                world,
                accounts=[member],
                regions=["us-east-1"],
                start=START,
                days=1,
                files_per_hour=1,
                records_per_file=(5, 10),
                bucket="team-trail-logs",
                org_id="",
                seed=99,
                collect_ids=True,
            )

        await asyncio.to_thread(add_trail)
        await wait_for_count(kafka_bootstrap, topic, world.records)
        assert telemetry.shards == org_shards + 1

        def delete_trail() -> None:
            client(aws_endpoint, "cloudtrail", **member_credentials(aws_endpoint, member)).delete_trail(
                Name="team-trail"
            )

        await asyncio.to_thread(delete_trail)
        await wait_until(lambda: telemetry.shards == org_shards, "the deleted trail's shard to stop")
    finally:
        stop.set()
        stats = await asyncio.wait_for(running, 60)
    seen = await event_ids(kafka_bootstrap, topic)
    assert sorted(seen) == sorted(world.event_ids)
    assert stats.records == world.records


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def wait_for_count(bootstrap: str, topic: str, expected: int, timeout_s: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    count = 0
    while asyncio.get_running_loop().time() < deadline:
        count = len(await read_all(bootstrap, topic, 30))
        if count >= expected:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{topic}: {count} records after {timeout_s} s, expected {expected}")
