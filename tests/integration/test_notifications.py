"""Notification mode against moto's SQS: backfill by listing, then follow by notifications; test events,
garbage and poison messages; messages deleted only after their files are acknowledged; no file twice."""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import World, client
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import read_all
from tests.integration.test_pipeline import START, event_ids, settings_for, topics, wait_for_count, wait_until
from tests.integration.test_s3_faults import small_world

pytestmark = pytest.mark.integration


def s3_event(bucket: str, *keys: str) -> str:
    records = [
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": k}},
        }
        for k in keys
    ]
    return json.dumps({"Records": records})


def cloudtrail_sns(bucket: str, *keys: str) -> str:
    return json.dumps({"Type": "Notification", "Message": json.dumps({"s3Bucket": bucket, "s3ObjectKey": list(keys)})})


def new_file(world: World, hour: int) -> tuple[str, list[str]]:
    account = world.accounts[0]
    when = START + timedelta(days=1, hours=hour)
    records = generate_records(100 + hour, account, "us-east-1", when, 4)
    key = log_key(account, "us-east-1", when, f"Notified{hour:08d}", org_id=world.org_id)
    client(world.endpoint, "s3").put_object(
        Bucket=world.bucket, Key=key, Body=gzip.compress(orjson.dumps({"Records": records}))
    )
    return key, [f"{account}:{r['eventID']}" for r in records]


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


async def test_backfill_by_listing_then_follow_by_notifications(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(small_world, aws_endpoint)
    sqs = client(aws_endpoint, "sqs")
    url = sqs.create_queue(QueueName="cloudtrail-notifications")["QueueUrl"]
    topic = await topics(kafka_bootstrap)
    settings = settings_for(
        aws_endpoint,
        kafka_bootstrap,
        topic,
        tmp_path,
        sections={
            "notifications": {"queue_url": url, "wait_seconds": 1, "visibility_timeout_seconds": 10, "max_receives": 1}
        },
        poll_interval_seconds=3600,  # after the backfill, only notifications can bring new files
    )
    telemetry = Telemetry()
    stop = asyncio.Event()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=telemetry))
    try:
        await wait_for_count(kafka_bootstrap, topic, world.records)
        (key_a, ids_a), (key_b, ids_b), (key_c, ids_c) = [
            await asyncio.to_thread(new_file, world, h) for h in (1, 2, 3)
        ]
        digest_key = key_a.replace("/CloudTrail/", "/CloudTrail-Digest/").replace("_CloudTrail_", "_CloudTrail-Digest_")
        for body in (
            s3_event(world.bucket, key_a, key_b),
            cloudtrail_sns(world.bucket, key_c),
            json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": world.bucket}),
            "this is not json {{{",
            s3_event(world.bucket, world.keys[-1]),  # already collected by the backfill (within the lookback)
            s3_event(world.bucket, digest_key),  # not a log file: nothing to collect
            s3_event("some-other-bucket", key_a),  # no shard collects it: poison after max_receives
        ):
            await asyncio.to_thread(sqs.send_message, QueueUrl=url, MessageBody=body)
        expected = world.records + len(ids_a) + len(ids_b) + len(ids_c)
        await wait_for_count(kafka_bootstrap, topic, expected, timeout_s=60)
        await wait_until(lambda: queue_depth(sqs, url) == 0, "every message deleted", timeout_s=60)
    finally:
        stop.set()
        await asyncio.wait_for(running, 90)

    seen = collections.Counter(await event_ids(kafka_bootstrap, topic))
    assert set(seen) == set(world.event_ids) | set(ids_a) | set(ids_b) | set(ids_c)
    assert max(seen.values()) == 1, "no file processed twice"
    letters = [msgspec.json.decode(r.value) for r in await read_all(kafka_bootstrap, f"{topic}-dlq", 30)]
    assert sorted(letter["reason"] for letter in letters) == ["notification_not_json", "poison_message"]
    poison = next(letter for letter in letters if letter["reason"] == "poison_message")
    assert key_a in poison["detail"] and poison["key"].startswith("sqs:")
