"""Every fault at once, in one run, and the collector never exits (issue 12's chaos test).

One organization (3 accounts x 2 regions, an organization trail) plus two member accounts' own trails, against
the real broker and moto's HTTP server behind the fault proxy:
- a poison file: one record holds an invalid UTF-8 byte sequence between good records;
- a member trail whose bucket is gone;
- a member account whose role is denied for the first part of the run (then appears);
- S3 answers 503 SlowDown to ~30% of object GETs for the first minute;
- the broker restarts mid-run.
At the end, every good record is in Kafka (read back, counted by key), the bad one is in the dead-letter topic
with its reason, and the run was still going when it was told to stop.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import time
from pathlib import Path

import orjson
import pytest

from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import World, add_account_trail, client, member_credentials
from tests.infra.fault_proxy import Fault, FaultProxy, sts_assume
from tests.infra.kafka_broker import KafkaBroker
from tests.integration.test_isolation import (
    account_logs,
    collecting,
    dead_letters,
    metric,
    org_world,
    organization_settings,
)
from tests.integration.test_pipeline import REGIONS, START, event_ids, topics, wait_until

pytestmark = pytest.mark.integration

SLOWDOWN_SECONDS = 60


def poison_file(world: World) -> tuple[str, bytes, list[str]]:
    """Five records, the third with an invalid UTF-8 sequence inside a string: the key, body and good ids."""
    account = world.management_account
    records = generate_records(303, account, "us-east-1", START, 5)
    records[2]["userAgent"] = "POISON-MARKER"
    data = orjson.dumps({"Records": records}).replace(b"POISON-MARKER", b"agent \xff\xfe\xc3(")
    key = log_key(account, "us-east-1", START.replace(hour=5, minute=1), "PoisonPoisonPois", org_id=world.org_id)
    good = [f"{account}:{r['eventID']}" for i, r in enumerate(records) if i != 2]
    return key, gzip.compress(data), good


async def test_chaos_every_fault_in_one_run(
    aws_endpoint: str, kafka_broker: KafkaBroker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    def setup() -> tuple[World, str, str, str, list[str]]:
        world = org_world(aws_endpoint, members=2, regions=REGIONS)
        gone, denied = (a for a in world.accounts if a != world.management_account)
        add_account_trail(world, gone, name="gone-trail", bucket="chaos-gone")
        client(aws_endpoint, "s3", **member_credentials(aws_endpoint, gone)).delete_bucket(Bucket="chaos-gone")
        add_account_trail(world, denied, name="own-trail", bucket="chaos-denied")
        key, body, good = poison_file(world)
        client(aws_endpoint, "s3").put_object(Bucket=world.bucket, Key=key, Body=body)
        return world, gone, denied, key, good

    world, gone, denied, poison_key, poison_good = await asyncio.to_thread(setup)
    denied_ids = await asyncio.to_thread(account_logs, world, denied, "chaos-denied", 21)
    expected = collections.Counter(world.event_ids + poison_good + denied_ids)

    proxy = FaultProxy(aws_endpoint)
    await proxy.start()
    deny = sts_assume(denied)
    slowdown = Fault(lambda method, path: method == "GET" and "list-type=" not in path, 503, "SlowDown", share=0.3)
    proxy.faults = [deny, slowdown]
    topic = await topics(kafka_bootstrap)
    settings = organization_settings(proxy.endpoint, kafka_bootstrap, topic, tmp_path, interval_seconds=2, attempts=2)
    telemetry, stop, running = collecting(settings)
    started = time.monotonic()
    try:
        await wait_until(lambda: telemetry.statistics().records >= 200, "first deliveries", 120)
        await asyncio.to_thread(kafka_broker.restart)
        assert not running.done(), "the collector must ride out a broker restart"
        await asyncio.sleep(max(0.0, SLOWDOWN_SECONDS - (time.monotonic() - started)))
        proxy.faults.remove(slowdown)
        proxy.faults.remove(deny)  # the role appears: the account is discovered and collected
        want = sum(expected.values())
        await wait_until(lambda: telemetry.statistics().records >= want, "every good record", 240)
        assert not running.done(), "the collector never exits on its own"
    finally:
        stop.set()
        stats = await asyncio.wait_for(running, 120)
        await proxy.stop()

    seen = collections.Counter(await event_ids(kafka_bootstrap, topic))
    missing = sum((expected - seen).values())
    duplicated = sum(count - 1 for count in seen.values() if count > 1)
    letters = await dead_letters(kafka_bootstrap, topic)
    print(
        f"chaos: expected {sum(expected.values())} records, delivered {len(seen)} distinct "
        f"({sum(seen.values())} messages), missing {missing}, duplicated {duplicated}, dead-lettered {len(letters)} "
        f"({sorted(collections.Counter(letter['reason'] for letter in letters).items())}); "
        f"503s injected {slowdown.hits}, AssumeRole denied {deny.hits}, shard faults "
        f"{metric(telemetry, 'ingester_shard_faults_total', kind='bucket_unavailable'):.0f} (gone bucket), "
        f"sink retries {metric(telemetry, 'ingester_retries_total', stage='sink'):.0f}"
    )
    assert missing == 0
    assert set(seen) == set(expected), "nothing but the generated records"
    assert [(letter["key"], letter["reason"], letter["record_index"]) for letter in letters] == [
        (poison_key, "invalid_utf8", 2)
    ]
    assert slowdown.hits > 0 and deny.hits > 0
    assert metric(telemetry, "ingester_shard_faults_total", kind="bucket_unavailable") >= 1
    assert stats.dead_letters == 1
    assert f"s3://chaos-gone/AWSLogs/{gone}/CloudTrail/us-east-1/" in telemetry.failing_shards
