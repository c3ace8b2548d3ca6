"""Late files: CloudTrail can deliver a file after files whose keys sort after it (same minute, smaller random
suffix; or a delayed delivery). Within ``lookback_seconds`` of the watermark such a file is collected exactly
once; beyond it, it is not looked for (the documented bound that keeps state and re-listing finite).
"""

from __future__ import annotations

import asyncio
import collections
import gzip
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import World, build_organization, client, upload_logs
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.integration.test_pipeline import START, event_ids, settings_for, topics, wait_for_count

pytestmark = pytest.mark.integration

LOOKBACK = timedelta(hours=2)


def one_shard(endpoint: str) -> World:
    world = build_organization(endpoint, members=0)
    upload_logs(
        world,
        accounts=world.accounts,
        regions=["us-east-1"],
        start=START,
        days=1,
        files_per_hour=4,
        records_per_file=(2, 6),
        collect_ids=True,
    )
    return world


def put_late(world: World, minutes_before_newest: int, suffix: str, seed: int) -> list[str]:
    """Upload a file dated ``minutes_before_newest`` before the newest key; returns its event ids."""
    account = world.accounts[0]
    when = START + timedelta(days=1) - timedelta(minutes=15) - timedelta(minutes=minutes_before_newest)
    records = generate_records(seed, account, "us-east-1", when, 3)
    key = log_key(account, "us-east-1", when, suffix, org_id=world.org_id)
    assert key < max(world.keys), "a late file sorts before what was already collected"
    client(world.endpoint, "s3").put_object(
        Bucket=world.bucket, Key=key, Body=gzip.compress(orjson.dumps({"Records": records}))
    )
    return [f"{account}:{r['eventID']}" for r in records]


async def test_late_files_within_lookback_are_collected_once(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(one_shard, aws_endpoint)
    topic = await topics(kafka_bootstrap)
    settings = settings_for(
        aws_endpoint,
        kafka_bootstrap,
        topic,
        tmp_path,
        poll_interval_seconds=1,
        lookback_seconds=int(LOOKBACK.total_seconds()),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=Telemetry()))
    try:
        await wait_for_count(kafka_bootstrap, topic, world.records)
        same_minute = await asyncio.to_thread(put_late, world, 0, "00000000000000aa", 1)
        delayed = await asyncio.to_thread(put_late, world, 90, "AAAAAAAAAAAAAAAA", 2)
        beyond = await asyncio.to_thread(put_late, world, 300, "BBBBBBBBBBBBBBBB", 3)
        await wait_for_count(kafka_bootstrap, topic, world.records + len(same_minute) + len(delayed))
        await asyncio.sleep(3)  # a few more polls: nothing else may arrive
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
    again = await run(settings, stop=asyncio.Event(), once=True)

    seen = collections.Counter(await event_ids(kafka_bootstrap, topic))
    assert set(seen) == set(world.event_ids) | set(same_minute) | set(delayed)
    assert max(seen.values()) == 1, "each late file exactly once"
    assert not set(beyond) & set(seen), "5 h late with a 2 h lookback is outside the documented bound"
    assert (again.objects_delivered, again.records) == (0, 0)
