"""Notifications in scale-out mode (issue 16, part 2): three replica processes share 16 shards; SQS notifications
reach whichever replica receives them, travel through the announcements topic to the shard's owner, and are
collected there. One replica is killed with SIGKILL between two waves of notifications: nothing is missing,
duplicates are counted, and every SQS message is deleted at the end.

After the backfill, shards poll only once an hour: files that arrive later can reach Kafka within the test only
through a notification (or, for the killed replica's shards, the new owner's listing at take-over).
"""

from __future__ import annotations

import asyncio
import gzip
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import World, client
from tests.infra.moto_server import MotoServer
from tests.integration.test_crash import start_collector
from tests.integration.test_notifications import queue_depth, s3_event
from tests.integration.test_pipeline import START, event_ids
from tests.integration.test_scaleout import (
    REGIONS,
    REPLICAS,
    Replica,
    assert_complete,
    events,
    kill_left_over,
    missing_and_duplicates,
    scaleout_config,
    terminate,
    topics_named,
    wait_for_balance,
    world_of_many_shards,
)

pytestmark = pytest.mark.integration


def config_with_notifications(path: Path, endpoint: str, bootstrap: str, topic: str, queue_url: str) -> Path:
    return scaleout_config(
        path,
        endpoint,
        bootstrap,
        topic,
        collection={"poll_interval_seconds": 3600, "max_poll_interval_seconds": 3600},
        extra=f"""[notifications]
queue_url = "{queue_url}"
wait_seconds = 1
visibility_timeout_seconds = 10""",
    )


def new_files(world: World, hour: int) -> tuple[list[str], list[str]]:
    """One new file per shard (account x region), in the hour after the backfill; their keys and event ids."""
    s3 = client(world.endpoint, "s3")
    keys, ids = [], []
    for n, account in enumerate(world.accounts):
        for region in REGIONS:
            when = START + timedelta(days=1, hours=hour, minutes=n)
            records = generate_records(1000 * hour + n, account, region, when, 5)
            key = log_key(account, region, when, f"Wave{hour}{n:02d}{region[:2]}", org_id=world.org_id)
            s3.put_object(Bucket=world.bucket, Key=key, Body=gzip.compress(orjson.dumps({"Records": records})))
            keys.append(key)
            ids.extend(f"{account}:{r['eventID']}" for r in records)
    return keys, ids


async def wait_for_ids(bootstrap: str, topic: str, expected: set[str], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not expected <= set(await event_ids(bootstrap, topic)):
        if time.monotonic() > deadline:
            missing = len(expected - set(await event_ids(bootstrap, topic)))
            pytest.fail(f"{what}: {missing} of {len(expected)} records missing after {timeout_s} s")
        await asyncio.sleep(1)


def notify(sqs: Any, url: str, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 4):  # a few files per message, as S3 batches them
        sqs.send_message(QueueUrl=url, MessageBody=s3_event(bucket, *keys[start : start + 4]))


async def test_three_replicas_collect_notified_files_through_kafka_and_survive_a_kill_9(
    moto_server: MotoServer, aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    moto_server.seed(20261202)
    world = await asyncio.to_thread(world_of_many_shards, aws_endpoint)
    shards = len(world.accounts) * len(REGIONS)
    sqs = client(aws_endpoint, "sqs")
    url = sqs.create_queue(QueueName=f"ct-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    topic = f"scaleout-n-{uuid.uuid4().hex[:8]}"
    await topics_named(kafka_bootstrap, topic)
    config = config_with_notifications(tmp_path, aws_endpoint, kafka_bootstrap, topic, url)
    replicas = [
        Replica(start_collector(config, tmp_path / f"replica-{n}.log", once=False), tmp_path / f"replica-{n}.log")
        for n in range(REPLICAS)
    ]
    try:
        spread = await wait_for_balance(replicas, time.monotonic() + 90, shards)
        await wait_for_ids(kafka_bootstrap, topic, set(world.event_ids), 120, "backfill")

        # Wave 1: every shard gets a file; only a notification can bring it in (the next poll is an hour away).
        keys_1, ids_1 = await asyncio.to_thread(new_files, world, 1)
        await asyncio.to_thread(notify, sqs, url, world.bucket, keys_1)
        await wait_for_ids(kafka_bootstrap, topic, set(ids_1), 60, "wave 1 through announcements")
        handed_over = {
            n: len(events(r.log, "announcements_reading")) for n, r in enumerate(replicas) if r.process.poll() is None
        }

        # Kill the replica with the most shards, then wave 2 while the group rebalances.
        victim = max(range(REPLICAS), key=lambda n: spread[n][1])
        replicas[victim].process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(replicas[victim].process.wait)
        survivors = [r for n, r in enumerate(replicas) if n != victim]
        keys_2, ids_2 = await asyncio.to_thread(new_files, world, 2)
        await asyncio.to_thread(notify, sqs, url, world.bucket, keys_2)
        after = await wait_for_balance(survivors, time.monotonic() + 90, shards)
        await wait_for_ids(kafka_bootstrap, topic, set(ids_2), 120, "wave 2 after the kill")
        deadline = time.monotonic() + 60
        while (depth := await asyncio.to_thread(queue_depth, sqs, url)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(1)
        codes = await terminate(survivors)
    finally:
        kill_left_over(replicas)

    expected = set(world.event_ids) | set(ids_1) | set(ids_2)
    seen = await event_ids(kafka_bootstrap, topic)
    missing, duplicates = missing_and_duplicates(expected, seen)
    print(
        f"scale-out notifications: {REPLICAS} replicas, {shards} shards, backfill {world.records} records, "
        f"2 waves of {len(keys_1)} notified files ({len(ids_1)} + {len(ids_2)} records), kill -9 of replica {victim} "
        f"between them; read back {len(seen)}, missing={missing} duplicates={duplicates}; SQS depth {depth}; "
        f"survivors after: {[(sorted(p), c) for p, c in after]}; reader starts before the kill: {handed_over}"
    )
    assert_complete(expected, seen, survivors, codes)
    assert depth == 0, "every SQS message is deleted once its announcements are acknowledged"
