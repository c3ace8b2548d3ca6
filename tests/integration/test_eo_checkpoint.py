"""The exactly-once checkpoint record stays small whatever the backlog (issue 19, case 6).

One shard, 10,000 one-record files (about 35 days at 12 files an hour), collected in one ``--once`` pass with
``kafka.delivery = "exactly_once"``. The checkpoint snapshot of the shard is one Kafka record; before pruning
followed the watermark inside a pass it held every key settled since the pass began, which passed Kafka's
1 MiB record limit at about 7,400 files and stuck the shard. Reading the checkpoint topic back shows every
snapshot the pass committed: the largest must stay within the lookback window plus what settles ahead of the
watermark, and every record must arrive exactly once (``read_committed``, counted by event id).
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import http.client
import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import msgspec
import orjson
import pytest

from ingester import config as config_mod
from ingester.checkpoint.kafka_store import ShardSnapshot
from ingester.checkpoint.watermark import CHECKPOINT_PRUNE_EVERY
from ingester.config import DEFAULT_LOOKBACK_SECONDS
from ingester.demo.generate import GeneratedFile, generate_files
from ingester.demo.world import World, build_organization
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import create_topic, read_all
from tests.integration.test_pipeline import event_ids, wait_for_count

pytestmark = pytest.mark.integration

FILES = 10_000
FILES_PER_HOUR = 12
MAX_INFLIGHT_OBJECTS = 8
UPLOAD_THREADS = 4
START = (datetime.now(UTC) - timedelta(days=FILES // FILES_PER_HOUR // 24 + 2)).replace(
    hour=0, minute=0, second=0, microsecond=0
)


def backlog(endpoint: str) -> World:
    """An organization of one account, and FILES one-record files in its us-east-1 shard."""
    world = build_organization(endpoint, members=0)
    days = FILES // (FILES_PER_HOUR * 24) + 1
    files = list(
        itertools.islice(
            generate_files(
                11,
                world.accounts,
                ["us-east-1"],
                START,
                days,
                files_per_hour=FILES_PER_HOUR,
                records_per_file=(1, 1),
                org_id=world.org_id,
            ),
            FILES,
        )
    )
    put_all(endpoint, world.bucket, files)
    for file in files:
        records = orjson.loads(gzip.decompress(file.body))["Records"]
        world.event_ids.extend(f"{r['recipientAccountId']}:{r['eventID']}" for r in records)
    world.files, world.records = len(files), sum(file.record_count for file in files)
    world.keys.extend(file.key for file in files)
    world.regions = ("us-east-1",)
    return world


def put_all(endpoint: str, bucket: str, files: list[GeneratedFile]) -> None:
    """PUT the files over UPLOAD_THREADS keep-alive connections, path-style and unsigned, which moto files under
    the account of the default credentials (the organization's management account). Not boto3: it spends about
    5 ms of CPU a call, nearly as much as moto, and this machine's two cores also run moto, Kafka and the collector.
    """
    url = urlsplit(endpoint)

    def upload(chunk: list[GeneratedFile]) -> None:
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
        try:
            for file in chunk:
                connection.request("PUT", f"/{bucket}/{quote(file.key)}", body=file.body)
                response = connection.getresponse()
                response.read()
                assert response.status == 200, f"PUT {file.key}: HTTP {response.status}"
        finally:
            connection.close()

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(upload, [files[n::UPLOAD_THREADS] for n in range(UPLOAD_THREADS)]))


async def kept_topics(bootstrap: str) -> str:
    """The output and dead-letter topics, without time retention: records carry their event time (CreateTime), five
    weeks old here, and the broker's default 7-day retention deletes them at its next check (every 5 minutes): a
    first run of this test lost its first 8 records that way, gone from read_uncommitted too."""
    topic = f"cloudtrail-{uuid.uuid4().hex[:8]}"
    for name, partitions in ((topic, 4), (f"{topic}-dlq", 1)):
        await create_topic(bootstrap, name, partitions=partitions, config={"retention.ms": "-1"})
    return topic


def snapshot_bound(key_length: int) -> tuple[int, int]:
    """(keys, bytes) a snapshot may hold: the keys from ``watermark - lookback`` to the watermark (the lookback
    window at FILES_PER_HOUR, plus its closing minute), the keys settled since the last prune, and those settled
    ahead of the watermark. The last are not bounded by the pipeline (objects overtake a slow one for as long as
    it is slow); allow twice what the work queue (2 x max_inflight_objects) and the workers hold. Each key costs
    its length plus quotes and a comma in the JSON list; the watermark and the braces fit in the fixed part."""
    window = FILES_PER_HOUR * DEFAULT_LOOKBACK_SECONDS // 3600 + 1
    ahead = 2 * 3 * MAX_INFLIGHT_OBJECTS
    keys = window + CHECKPOINT_PRUNE_EVERY + ahead
    return keys, keys * (key_length + 3) + 2 * key_length + 64


async def test_a_10000_file_backfill_keeps_the_checkpoint_record_small(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    world = await asyncio.to_thread(backlog, aws_endpoint)
    uploaded = time.monotonic()
    assert world.files == FILES and world.records == FILES
    topic = await kept_topics(kafka_bootstrap)
    checkpoints = f"{topic}-checkpoints"
    settings = config_mod.build(
        {
            "aws": {"endpoint_url": aws_endpoint},
            "discovery": {"mode": "organization", "regions": ["us-east-1"], "interval_seconds": 1},
            "collection": {"start_time": START.isoformat(), "max_inflight_objects": MAX_INFLIGHT_OBJECTS},
            "kafka": {
                "bootstrap_servers": kafka_bootstrap,
                "topic": topic,
                "dead_letter_topic": f"{topic}-dlq",
                "delivery": "exactly_once",
                "transactional_id": f"{topic}-txn",
                "checkpoint_topic": checkpoints,
                "transaction_interval_ms": 200,
            },
            "checkpoint": {"path": str(tmp_path / "unused.sqlite")},
        }
    )

    stats = await run(settings, stop=asyncio.Event(), once=True)
    collected = time.monotonic()

    assert (stats.objects_delivered, stats.records, stats.dead_letters) == (FILES, FILES, 0)
    # A commit returns before its markers reach the partitions: read_committed sees the last one a moment later.
    await wait_for_count(kafka_bootstrap, topic, FILES)
    seen = collections.Counter(await event_ids(kafka_bootstrap, topic))
    snapshots = await checkpoint_records(kafka_bootstrap, checkpoints, final_watermark=max(world.keys))
    largest = max(size for size, _ in snapshots)
    most_keys = max(len(snapshot.settled) for _, snapshot in snapshots)
    most_ahead = max(sum(key > (s.watermark or "") for key in s.settled) for _, s in snapshots)
    key_length = max(len(key) for key in world.keys)
    bound_keys, bound_bytes = snapshot_bound(key_length)
    print(
        f"\n{FILES} files: {len(snapshots)} checkpoint records, largest {largest} bytes ({most_keys} keys, at most "
        f"{most_ahead} ahead of the watermark); bound {bound_bytes} bytes ({bound_keys} keys of {key_length} chars)"
        f"; upload {uploaded - began:.0f} s, collect {collected - uploaded:.0f} s"
    )
    assert [key for key, count in seen.items() if count > 1] == []
    assert seen.keys() == set(world.event_ids)
    assert most_keys <= bound_keys
    assert largest <= bound_bytes


async def checkpoint_records(
    bootstrap: str, topic: str, *, final_watermark: str, timeout_s: float = 60
) -> list[tuple[int, ShardSnapshot]]:
    """Every committed snapshot (size, decoded), once the last one (at ``final_watermark``) is visible."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        records = [record.value for record in await read_all(bootstrap, topic, timeout_s) if record.value]
        snapshots = [(len(value), msgspec.json.decode(value, type=ShardSnapshot)) for value in records]
        if snapshots and snapshots[-1][1].watermark == final_watermark:
            return snapshots
        if asyncio.get_running_loop().time() > deadline:
            last = snapshots[-1][1].watermark if snapshots else None
            raise AssertionError(f"{topic}: last checkpoint at {last}, expected {final_watermark}")
        await asyncio.sleep(0.5)
