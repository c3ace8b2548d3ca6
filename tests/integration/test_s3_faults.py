"""S3 failures for single keys: throttling and expired tokens are retried, 403/404 are dead-lettered, and a key
that keeps failing holds the checkpoint until it succeeds on a later poll. Nothing stops the other files.

aiobotocore talks HTTP to a fault-injecting proxy in front of moto's server (tests/infra/fault_proxy.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from ingester.demo.world import World, build_organization, upload_logs
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.fault_proxy import Fault, FaultProxy, get_of
from tests.infra.kafka_broker import read_all
from tests.integration.test_pipeline import START, event_ids, settings_for, topics, wait_until

pytestmark = pytest.mark.integration


def small_world(endpoint: str) -> World:
    world = build_organization(endpoint, members=0)
    upload_logs(
        world,
        accounts=world.accounts,
        regions=["us-east-1"],
        start=START,
        days=1,
        files_per_hour=1,
        records_per_file=(2, 5),
        collect_ids=True,
    )
    return world


def ids_of(world: World, key: str) -> set[str]:
    """Event ids in one uploaded file (the world keeps ids in upload order, files in key order)."""
    import gzip

    import boto3
    import orjson

    s3 = boto3.client(
        "s3", endpoint_url=world.endpoint, aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1"
    )
    body = s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    return {f"{r['recipientAccountId']}:{r['eventID']}" for r in orjson.loads(gzip.decompress(body))["Records"]}


async def test_s3_errors_on_single_keys(aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    world = await asyncio.to_thread(small_world, aws_endpoint)
    slow, forbidden, missing, expired, flaky = (world.keys[i] for i in (3, 7, 11, 15, 19))
    faults = {
        "slow": Fault(get_of(slow), 503, "SlowDown", times=4),
        "forbidden": Fault(get_of(forbidden), 403, "AccessDenied"),
        "missing": Fault(get_of(missing), 404, "NoSuchKey"),
        "expired": Fault(get_of(expired), 400, "ExpiredToken", times=2),
        "flaky": Fault(get_of(flaky), 500, "InternalError"),
    }
    proxy = FaultProxy(aws_endpoint)
    await proxy.start()
    proxy.faults = list(faults.values())
    topic = await topics(kafka_bootstrap)
    settings = settings_for(proxy.endpoint, kafka_bootstrap, topic, tmp_path, poll_interval_seconds=1, max_attempts=3)
    lost = await asyncio.to_thread(lambda: ids_of(world, forbidden) | ids_of(world, missing))
    telemetry = Telemetry()
    stop = asyncio.Event()
    running = asyncio.create_task(run(settings, stop=stop, telemetry=telemetry))
    try:
        await wait_until(lambda: telemetry.statistics().objects_errored >= 1, "the flaky key to error", 60)
        # The key that keeps failing holds the watermark; everything else went through meanwhile.
        assert telemetry.statistics().objects_delivered == world.files - 3
        proxy.faults.remove(faults["flaky"])
        await wait_until(lambda: telemetry.statistics().objects_delivered == world.files - 2, "the retry", 60)
    finally:
        stop.set()
        stats = await asyncio.wait_for(running, 60)
        await proxy.stop()

    assert sorted(await event_ids(kafka_bootstrap, topic)) == sorted(set(world.event_ids) - lost)
    letters = [msgspec.json.decode(r.value) for r in await read_all(kafka_bootstrap, f"{topic}-dlq", 30)]
    assert sorted((letter["key"], letter["reason"]) for letter in letters) == sorted(
        [(forbidden, "object_unreadable"), (missing, "object_unreadable")]
    )
    assert "AccessDenied" in next(letter["detail"] for letter in letters if letter["key"] == forbidden)
    assert faults["slow"].hits == 4  # botocore retried some, ingester the rest: it was delivered
    assert faults["expired"].hits == 2
    assert faults["flaky"].hits >= 2
    assert stats.objects_rejected == 2
