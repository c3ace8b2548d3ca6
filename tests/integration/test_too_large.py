"""A record larger than the topic takes is dead-lettered, and its partition keeps flowing (issues 12 and 19).

The topic's ``max.message.bytes`` (64 KiB here) is below the producer's own limit (1 MiB), so only the broker
knows it. Three ways the collector can meet it, each against the real broker:

- known at start (describe_configs): the record is never sent;
- lowered while the collector runs: the broker refuses the batch, which breaks the idempotent producer's
  sequence on that partition; the sink replaces the producer, reads the limit again and resends the rest;
- never readable (a stand-in for a cluster that denies DescribeConfigs): the refused batch is resent in halves
  until the one record is isolated.

In every case: each good record arrives, the big one is in the dead-letter topic as ``record_too_large`` (cut
to fit that topic's own, smaller limit), and later files on the same partition arrive. On main each case
stalls the shard, retrying forever.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import gzip
import random
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]
from aiokafka.admin.config_resource import (  # type: ignore[import-untyped, unused-ignore]
    ConfigResource,
    ConfigResourceType,
)

from ingester import config as config_mod
from ingester.config import KafkaSettings
from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import World, build_organization, client, upload_logs
from ingester.models import DeadLetter, OutboundRecord
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from ingester.sinks.kafka import KafkaSink
from ingester.sinks.transactional import TransactionalKafkaSink
from tests.infra.kafka_broker import create_topic, read_all
from tests.integration.test_pipeline import REGIONS, START

pytestmark = pytest.mark.integration

TOPIC_LIMIT = 64 * 1024
DEAD_LETTER_LIMIT = 32 * 1024
RUN_TIMEOUT_SECONDS = 120
DELIVERIES = ["at_least_once", "exactly_once"]


def incompressible(size: int, seed: int) -> str:
    """Base64 of random bytes: zstd leaves ~3/4 of it, so ~100 KiB stays above a 64 KiB limit compressed."""
    return base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()


def big_file(world: World, day: int, seed: int) -> tuple[str, bytes, list[str], str]:
    """One file of the first shard: 12 normal records with one of ~100 KiB in the middle, at 01:30."""
    account, region = world.accounts[0], REGIONS[0]
    when = START + timedelta(days=day, hours=1, minutes=30)
    records = generate_records(seed, account, region, when, 13)
    records[6]["requestParameters"] = {"blob": incompressible(100 * 1024, seed)}
    ids = [f"{account}:{r['eventID']}" for r in records]
    key = log_key(account, region, when, "BigRecordInsideX", org_id=world.org_id)
    return key, gzip.compress(orjson.dumps({"Records": records})), ids[:6] + ids[7:], ids[6]


def upload_day(world: World, day: int, seed: int) -> tuple[str, list[str], str]:
    """The big file, then a day of files (one an hour, per region); returns its key, good ids, big id.

    The big file goes first: the collector may list while this uploads, and a file appearing after its shard's
    checkpoint moved more than ``lookback_seconds`` past it would not be looked for."""
    key, body, good, big = big_file(world, day, seed)
    client(world.endpoint, "s3").put_object(Bucket=world.bucket, Key=key, Body=body)
    world.event_ids.extend(good)
    upload_logs(
        world,
        accounts=world.accounts,
        regions=REGIONS,
        start=START + timedelta(days=day),
        days=1,
        seed=seed,
        files_per_hour=1,
        records_per_file=(1, 30),
        collect_ids=True,
    )
    return key, good, big


def settings_for(endpoint: str, bootstrap: str, topic: str, tmp_path: Path, delivery: str, **collection: Any) -> Any:
    return config_mod.build(
        {
            "aws": {"endpoint_url": endpoint},
            "discovery": {"mode": "organization", "regions": list(REGIONS), "interval_seconds": 1},
            "collection": {"start_time": START.isoformat(), **collection},
            "kafka": {
                "bootstrap_servers": bootstrap,
                "topic": topic,
                "dead_letter_topic": f"{topic}-dlq",
                "delivery": delivery,
                "transactional_id": f"ingester-{topic}",
                "checkpoint_topic": f"{topic}-checkpoints",
            },
            "checkpoint": {"path": str(tmp_path / "checkpoints.sqlite")},
        }
    )


async def make_topics(bootstrap: str, *, limited: bool) -> str:
    """The events topic (4 partitions) and its dead-letter topic, with small limits unless ``limited`` is off."""
    topic = f"too-large-{uuid.uuid4().hex[:8]}"
    events = {"max.message.bytes": str(TOPIC_LIMIT)} if limited else {}
    await create_topic(bootstrap, topic, partitions=4, config=events)
    await create_topic(bootstrap, f"{topic}-dlq", partitions=1, config={"max.message.bytes": str(DEAD_LETTER_LIMIT)})
    return topic


async def lower_limit(bootstrap: str, topic: str, limit: int) -> None:
    """alter_configs, then wait until the broker describes the new value (and a moment for its log to apply it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = {"max.message.bytes": str(limit)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, wanted)])
        deadline = time.monotonic() + 30
        while True:
            described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, wanted)])
            entries = described[0].resources[0][4]
            if entries and entries[0][1] == str(limit):
                break
            assert time.monotonic() < deadline, f"topic {topic} still describes {entries}"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    await asyncio.sleep(1)


async def keys_of(bootstrap: str, topic: str) -> list[str]:
    return [record.key.decode() for record in await read_all(bootstrap, topic, 60) if record.key is not None]


async def letters_of(bootstrap: str, topic: str) -> list[tuple[dict[str, Any], int]]:
    """Each dead letter, decoded, with its size on the wire."""
    return [(msgspec.json.decode(r.value), len(r.value)) for r in await read_all(bootstrap, f"{topic}-dlq", 60)]


def sink_retries(telemetry: Telemetry) -> float:
    value = telemetry.registry.get_sample_value("ingester_retries_total", {"stage": "sink"})
    return value or 0.0


def assert_outcome(
    seen: list[str], expected: Sequence[str], letters: list[tuple[dict[str, Any], int]], key: str
) -> None:
    duplicates = [k for k, n in collections.Counter(seen).items() if n > 1]
    assert sorted(set(seen)) == sorted(expected), (
        f"missing {len(set(expected) - set(seen))}, extra {set(seen) - set(expected)}"
    )
    too_large = [(letter, size) for letter, size in letters if letter["reason"] == "record_too_large"]
    assert [letter["key"] for letter, _ in too_large] == [key], letters
    letter, size = too_large[0]
    assert size <= DEAD_LETTER_LIMIT and letter["record"], (size, letter["detail"])
    assert "exceeds" in letter["detail"] and key in letter["detail"]
    assert duplicates == []  # only unacknowledged batches are resent, and the worker never retries the file


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_limit_known_at_start_record_is_dead_lettered_and_partition_flows(
    delivery: str, aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    def setup() -> tuple[World, str, str]:
        world = build_organization(aws_endpoint, members=0)
        key, _good, big = upload_day(world, 0, seed=11)
        return world, key, big

    world, key, big = await asyncio.to_thread(setup)
    topic = await make_topics(kafka_bootstrap, limited=True)
    settings = settings_for(aws_endpoint, kafka_bootstrap, topic, tmp_path, delivery)
    telemetry = Telemetry()

    began = time.monotonic()
    stats = await asyncio.wait_for(
        run(settings, stop=asyncio.Event(), once=True, telemetry=telemetry), RUN_TIMEOUT_SECONDS
    )
    print(f"{delivery}: {stats.records} records of {world.files + 1} files in {time.monotonic() - began:.1f}s")

    seen = await keys_of(kafka_bootstrap, topic)
    assert big not in seen
    assert_outcome(seen, world.event_ids, await letters_of(kafka_bootstrap, topic), key)
    assert stats.dead_letters == 1 and stats.objects_delivered == world.files + 1
    assert sink_retries(telemetry) == 0


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_limit_lowered_while_running_refused_batch_is_resent_without_the_record(
    delivery: str, aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(build_organization, aws_endpoint, members=0)
    await asyncio.to_thread(
        upload_logs,
        world,
        accounts=world.accounts,
        regions=REGIONS,
        start=START,
        days=1,
        files_per_hour=1,
        records_per_file=(1, 30),
        collect_ids=True,
    )
    topic = await make_topics(kafka_bootstrap, limited=False)
    settings = settings_for(
        aws_endpoint, kafka_bootstrap, topic, tmp_path, delivery, poll_interval_seconds=1, max_poll_interval_seconds=1
    )
    stop, telemetry = asyncio.Event(), Telemetry()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=telemetry))
    try:
        await wait_for_keys(kafka_bootstrap, topic, world.event_ids, running)
        # The sink read 1 MiB at start; from now on the broker refuses what it would have sent.
        await lower_limit(kafka_bootstrap, topic, TOPIC_LIMIT)
        began = time.monotonic()
        key, _good, big = await asyncio.to_thread(upload_day, world, 1, 12)
        await wait_for_keys(kafka_bootstrap, topic, world.event_ids, running)
        print(f"{delivery}: second day delivered {time.monotonic() - began:.1f}s after its upload began")
    finally:
        stop.set()
        stats = await asyncio.wait_for(running, RUN_TIMEOUT_SECONDS)

    seen = await keys_of(kafka_bootstrap, topic)
    assert big not in seen
    assert_outcome(seen, world.event_ids, await letters_of(kafka_bootstrap, topic), key)
    assert stats.dead_letters == 1
    assert sink_retries(telemetry) == 0


async def wait_for_keys(bootstrap: str, topic: str, expected: Sequence[str], running: asyncio.Task[Any]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    wanted = set(expected)
    while not wanted <= set(await keys_of(bootstrap, topic)):
        if running.done():
            running.result()
            pytest.fail("the collector stopped early")
        assert time.monotonic() < deadline, f"not every record arrived on {topic} in {RUN_TIMEOUT_SECONDS}s"
        await asyncio.sleep(0.5)


class UnknownLimits:
    """A cluster that answers no DescribeConfigs: the sink learns the limit from the broker's refusals only."""

    async def max_message_bytes(self, topics: Sequence[str]) -> dict[str, int]:
        return {}


def outbound(name: str, value: bytes) -> OutboundRecord:
    return OutboundRecord(key=name.encode(), value=value, timestamp_ms=1_767_225_600_000, partition_key=b"111122223333")


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_limit_unknown_refused_batch_is_halved_until_the_record_is_isolated(
    delivery: str, kafka_bootstrap: str
) -> None:
    topic = f"too-large-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic, partitions=1, config={"max.message.bytes": str(TOPIC_LIMIT)})
    await create_topic(
        kafka_bootstrap, f"{topic}-dlq", partitions=1, config={"max.message.bytes": str(DEAD_LETTER_LIMIT)}
    )
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        dead_letter_topic=f"{topic}-dlq",
        transactional_id=f"ingester-{topic}",
    )
    sink = (
        TransactionalKafkaSink(settings, limits=UnknownLimits())
        if delivery == "exactly_once"
        else KafkaSink(settings, limits=UnknownLimits())
    )
    normal = [outbound(f"first-{i}", orjson.dumps({"n": i, "pad": "x" * 1500})) for i in range(16)]
    big = outbound("big", incompressible(100 * 1024, 3).encode())
    later = [outbound(f"later-{i}", orjson.dumps({"n": i, "pad": "y" * 1500})) for i in range(16)]
    letter = DeadLetter(shard_id="s", bucket="b", key="k", reason="record_too_large", detail="d", record="z" * 90_000)

    await sink.start()
    async with asyncio.TaskGroup() as group:
        maintain = group.create_task(sink.maintain())
        async with sink.unit():
            assert await sink.deliver([*normal[:8], big, *normal[8:]]) == [8]
            await sink.dead_letter(msgspec.structs.replace(letter, record=incompressible(90_000, 4)))
        async with sink.unit():
            assert await sink.deliver(later) == []
        await sink.close()
        await maintain

    stats = sink.statistics()
    assert stats.refused_batches >= 2 and stats.producer_restarts >= 2, stats  # the events batch, the letter
    assert stats.dead_letters == 1 and stats.records == len(normal) + len(later)
    seen = await keys_of(kafka_bootstrap, topic)
    assert seen == [r.key.decode() for r in normal + later]  # in order, once: only unacknowledged batches resent
    letters = await letters_of(kafka_bootstrap, topic)
    assert len(letters) == 1 and letters[0][1] <= DEAD_LETTER_LIMIT and letters[0][0]["record"]
