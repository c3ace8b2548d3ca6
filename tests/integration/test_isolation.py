"""One bad bucket, account, key or S3 hiccup never stops the others (issues 12 and 19), against the real broker
and moto's HTTP server behind the fault-injecting proxy (tests/infra/fault_proxy.py).

- a trail whose bucket is gone, and a member account whose role is denied: the shard (or account) is reported
  and retried, every other shard delivers, and both recover by themselves once the bucket / role appears;
- an account whose discovery fails later keeps its running shard (only a trail known to be gone stops one);
- keys that are not log files (a nested object, an impossible minute) are dead-lettered once as ``bad_key`` and
  never become the watermark (the shard does not re-send its history);
- a connection reset mid-body and a LIST throttled past botocore's attempts are retried, nothing is lost;
- a file delivered later than the lookback is found by the deep re-list, once.
"""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from ingester.checkpoint.passes import CLOCK_SKEW
from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import World, add_account_trail, build_organization, client, member_credentials, upload_logs
from ingester.ops.telemetry import Telemetry
from ingester.pipeline.runtime import run
from tests.infra.fault_proxy import Fault, FaultProxy, get_of, list_of, sts_assume
from tests.infra.kafka_broker import read_all
from tests.integration.test_pipeline import REGIONS, START, event_ids, settings_for, topics, wait_until

pytestmark = pytest.mark.integration


def metric(telemetry: Telemetry, name: str, **labels: str) -> float:
    value = telemetry.registry.get_sample_value(name, labels)
    return value or 0.0


async def dead_letters(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.value) for r in await read_all(bootstrap, f"{topic}-dlq", 30)]


def ids_in(body: bytes) -> list[str]:
    return [f"{r['recipientAccountId']}:{r['eventID']}" for r in orjson.loads(gzip.decompress(body))["Records"]]


def collecting(settings: Any) -> tuple[Telemetry, asyncio.Event, asyncio.Task[Any]]:
    """A collector running in this loop until ``stop`` is set: its telemetry, its stop event, its task."""
    telemetry, stop = Telemetry(), asyncio.Event()
    return telemetry, stop, asyncio.create_task(run(settings, stop=stop, telemetry=telemetry))


def organization_settings(
    endpoint: str, bootstrap: str, topic: str, tmp_path: Path, *, interval_seconds: int, attempts: int
) -> Any:
    """Fast polls and discovery passes over the organization, few control-plane retries (faults are injected)."""
    discovery = {
        "mode": "organization",
        "regions": list(REGIONS),
        "interval_seconds": interval_seconds,
        "control_plane_max_attempts": attempts,
    }
    return settings_for(
        endpoint,
        bootstrap,
        topic,
        tmp_path,
        poll_interval_seconds=1,
        max_poll_interval_seconds=2,
        sections={"discovery": discovery},
    )


def one_region(settings: Any) -> Any:
    return msgspec.structs.replace(
        settings, discovery=msgspec.structs.replace(settings.discovery, regions=("us-east-1",))
    )


def org_world(endpoint: str, *, members: int, regions: tuple[str, ...] = ("us-east-1",), days: int = 1) -> World:
    """An organization trail's files: one per hour, 1-10 records each."""
    world = build_organization(endpoint, members=members)
    upload_logs(
        world,
        accounts=world.accounts,
        regions=regions,
        start=START,
        days=days,
        files_per_hour=1,
        records_per_file=(1, 10),
        collect_ids=True,
    )
    return world


def account_logs(world: World, account: str, bucket: str, seed: int) -> list[str]:
    """A member account's own trail files (no organization prefix), one day in us-east-1; their event ids."""
    before = len(world.event_ids)
    upload_logs(
        world,
        accounts=[account],
        regions=["us-east-1"],
        start=START,
        days=1,
        seed=seed,
        files_per_hour=1,
        records_per_file=(1, 5),
        bucket=bucket,
        org_id="",
        collect_ids=True,
    )
    added = world.event_ids[before:]
    del world.event_ids[before:]
    return added


async def test_missing_bucket_and_denied_role_stop_only_their_own_shard(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    def setup() -> tuple[World, str, str]:
        world = org_world(aws_endpoint, members=2, regions=REGIONS)
        gone, denied = (a for a in world.accounts if a != world.management_account)
        add_account_trail(world, gone, name="gone-trail", bucket="gone-bucket")
        client(aws_endpoint, "s3", **member_credentials(aws_endpoint, gone)).delete_bucket(Bucket="gone-bucket")
        add_account_trail(world, denied, name="own-trail", bucket="denied-bucket")
        return world, gone, denied

    world, gone, denied = await asyncio.to_thread(setup)
    denied_ids = await asyncio.to_thread(account_logs, world, denied, "denied-bucket", 11)
    proxy = FaultProxy(aws_endpoint)
    await proxy.start()
    deny = sts_assume(denied)
    proxy.faults = [deny]
    topic = await topics(kafka_bootstrap)
    settings = organization_settings(proxy.endpoint, kafka_bootstrap, topic, tmp_path, interval_seconds=1, attempts=1)
    telemetry, stop, running = collecting(settings)
    gone_shard = f"s3://gone-bucket/AWSLogs/{gone}/CloudTrail/us-east-1/"
    try:
        # Every organization shard flows while the gone bucket's shard fails and the denied account is skipped.
        want = sorted(world.event_ids)
        await wait_until(lambda: telemetry.statistics().records >= len(want), "the healthy shards", 120)
        assert sorted(await event_ids(kafka_bootstrap, topic)) == want
        await wait_until(lambda: gone_shard in telemetry.failing_shards, "the gone bucket's fault", 30)
        assert telemetry.failing_shards[gone_shard].startswith("bucket_unavailable: ")
        assert "NoSuchBucket" in telemetry.failing_shards[gone_shard]
        assert metric(telemetry, "ingester_shard_faults_total", kind="bucket_unavailable") >= 1
        assert metric(telemetry, "ingester_discovery_failures_total", account=denied) >= 1
        assert deny.hits >= 1
        assert not running.done()

        # The bucket comes back with files: the shard recovers by itself and delivers them.
        gone_ids = await asyncio.to_thread(
            lambda: (
                client(aws_endpoint, "s3", **member_credentials(aws_endpoint, gone)).create_bucket(
                    Bucket="gone-bucket"
                ),
                account_logs(world, gone, "gone-bucket", 12),
            )[1]
        )
        # The role appears: the account is discovered on the next pass and its trail's files delivered.
        proxy.faults.remove(deny)
        want = sorted(world.event_ids + gone_ids + denied_ids)
        await wait_until(lambda: telemetry.statistics().records >= len(want), "the recovered shards", 120)
        await wait_until(lambda: gone_shard not in telemetry.failing_shards, "the fault to clear", 30)

        # Discovery now fails for every account (CloudTrail's DescribeTrails answers 503 past botocore's
        # retries): the running shards keep running and collect a new file.
        proxy.faults.append(
            Fault(lambda method, _: method == "POST", 503, "ServiceUnavailable", body=b"includeShadowTrails")
        )
        shards = telemetry.shards
        fails = metric(telemetry, "ingester_discovery_failures_total", account=denied)
        await wait_until(
            lambda: metric(telemetry, "ingester_discovery_failures_total", account=denied) > fails + 1,
            "two more failed discovery passes",
            60,
        )
        assert telemetry.shards == shards, "a failed look at an account must not stop its shards"
        late = log_key(denied, "us-east-1", datetime.now(UTC).replace(second=0, microsecond=0), "AfterDenyAfterD")
        body = gzip.compress(orjson.dumps({"Records": generate_records(101, denied, "us-east-1", START, 5)}))
        await asyncio.to_thread(
            lambda: client(aws_endpoint, "s3").put_object(Bucket="denied-bucket", Key=late, Body=body)
        )
        want = sorted(want + ids_in(body))
        await wait_until(lambda: telemetry.statistics().records >= len(want), "the file after the denial", 60)
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        await proxy.stop()
    assert sorted(await event_ids(kafka_bootstrap, topic)) == want


async def test_keys_that_are_not_log_files_are_dead_lettered_once_and_never_a_watermark(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    def setup() -> tuple[World, list[str]]:
        world = org_world(aws_endpoint, members=0)
        account = world.accounts[0]
        last = log_key(account, "us-east-1", START.replace(hour=23, minute=30), "LastOfTheDayLast", org_id=world.org_id)
        day = last.rsplit("/", 1)[0]
        bad = [
            # sorts after every file of the day: on main it became the watermark, and the shard re-sent history
            f"{day}/zz-extra/notes.json.gz",
            last.replace(START.strftime("%Y%m%dT2330Z"), START.strftime("%Y%m%dT2399Z")),
        ]
        s3 = client(aws_endpoint, "s3")
        for key in bad:
            s3.put_object(Bucket=world.bucket, Key=key, Body=gzip.compress(b'{"Records": []}'))
        return world, bad

    world, bad = await asyncio.to_thread(setup)
    topic = await topics(kafka_bootstrap)
    settings = settings_for(
        aws_endpoint, kafka_bootstrap, topic, tmp_path, poll_interval_seconds=1, max_poll_interval_seconds=1
    )
    settings = one_region(settings)
    telemetry, stop, running = collecting(settings)
    try:
        await wait_until(lambda: telemetry.statistics().records >= len(world.event_ids), "the good files", 60)
        cycles = telemetry.statistics().objects_delivered
        await asyncio.sleep(4)  # several polls: nothing may be sent again
        assert telemetry.statistics().objects_delivered == cycles
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
    ids = await event_ids(kafka_bootstrap, topic)
    assert sorted(ids) == sorted(world.event_ids), "each record exactly once"
    letters = await dead_letters(kafka_bootstrap, topic)
    assert sorted((letter["key"], letter["reason"]) for letter in letters) == sorted((k, "bad_key") for k in bad)

    again = await run(settings, stop=asyncio.Event(), once=True)  # a restart: nothing again, no dead letter
    assert (again.objects_delivered, again.dead_letters) == (0, 0)


async def test_reset_mid_body_and_list_throttled_past_botocore_are_retried(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(org_world, aws_endpoint, members=1)
    throttled = world.accounts[1]
    proxy = FaultProxy(aws_endpoint)
    await proxy.start()
    resets = [Fault(get_of(key), reset=True, times=1) for key in world.keys[2:40:7]]
    slow_list = Fault(list_of(throttled), 503, "SlowDown", times=12)  # more than botocore's attempts
    proxy.faults = [*resets, slow_list]
    topic = await topics(kafka_bootstrap)
    settings = settings_for(
        proxy.endpoint, kafka_bootstrap, topic, tmp_path, poll_interval_seconds=1, max_poll_interval_seconds=2
    )
    settings = one_region(settings)
    telemetry, stop, running = collecting(settings)
    try:
        await wait_until(lambda: telemetry.statistics().records >= len(world.event_ids), "every file", 120)
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        await proxy.stop()
    assert all(fault.hits == 1 for fault in resets)
    assert slow_list.hits == 12
    assert metric(telemetry, "ingester_shard_faults_total", kind="s3") >= 1
    assert metric(telemetry, "ingester_retries_total", stage="source") >= len(resets)
    assert sorted(await event_ids(kafka_bootstrap, topic)) == sorted(world.event_ids)
    assert await dead_letters(kafka_bootstrap, topic) == []


async def test_a_file_later_than_the_lookback_is_found_by_the_deep_relist(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    world = await asyncio.to_thread(org_world, aws_endpoint, members=0, days=2)
    topic = await topics(kafka_bootstrap)
    # The stored files carry old names but were stored just now: let the collector's first pass start more than
    # CLOCK_SKEW after them, as a collector starting on a real bucket does.
    await asyncio.sleep(CLOCK_SKEW.total_seconds() + 1)
    settings = settings_for(
        aws_endpoint,
        kafka_bootstrap,
        topic,
        tmp_path,
        poll_interval_seconds=1,
        max_poll_interval_seconds=1,
        lookback_seconds=600,
        deep_relist_interval_seconds=3,
    )
    settings = one_region(settings)
    telemetry, stop, running = collecting(settings)
    account = world.accounts[0]
    late_at = (START + timedelta(days=1, hours=3, minutes=2)).replace(tzinfo=UTC)  # hours behind the watermark
    late = log_key(account, "us-east-1", late_at, "LateLateLateLate", org_id=world.org_id)
    body = gzip.compress(orjson.dumps({"Records": generate_records(202, account, "us-east-1", late_at, 9)}))
    try:
        await wait_until(lambda: telemetry.statistics().records >= len(world.event_ids), "the stored files", 60)
        await asyncio.to_thread(lambda: client(aws_endpoint, "s3").put_object(Bucket=world.bucket, Key=late, Body=body))
        want = len(world.event_ids) + len(ids_in(body))
        await wait_until(lambda: telemetry.statistics().records >= want, "the late file", 30)
        await asyncio.sleep(8)  # two more deep passes: found once only
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
    assert metric(telemetry, "ingester_late_files_total", kind="beyond_lookback") == 1
    assert metric(telemetry, "ingester_list_requests_total", **{"pass": "deep"}) >= 2
    ids = await event_ids(kafka_bootstrap, topic)
    assert sorted(ids) == sorted(world.event_ids + ids_in(body)), "each record exactly once"
