"""Bad input never stops good input: each bad object or record gets a dead letter, the rest arrives.

Real broker, real moto server: bad objects are uploaded into a shard's prefix between good files, and the
dead-letter topic is read back.
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import msgspec
import orjson
import pytest

from ingester.demo.generate import generate_records, log_key
from ingester.demo.world import build_organization, client, upload_logs
from ingester.pipeline.runtime import run
from tests.infra.kafka_broker import read_all
from tests.integration.test_pipeline import REGIONS, START, event_ids, settings_for, topics

pytestmark = pytest.mark.integration


def bad_objects(account: str, region: str, org_id: str) -> dict[str, tuple[bytes, str]]:
    """key -> (body, expected dead-letter reason), spread over the first day."""

    def key(minute: int, suffix: str) -> str:
        return log_key(account, region, START.replace(hour=1, minute=minute), suffix, org_id=org_id)

    good = orjson.dumps({"Records": generate_records(5, account, region, START, 3)})
    digest = b'{"awsAccountId":"111122223333","digestStartTime":"2026-01-01T00:00:00Z","logFiles":[]}'
    return {
        key(1, "ZeroByteZeroByte"): (b"", "empty_object"),
        key(2, "NotGzipNotGzip00"): (b"PK\x03\x04 this is a zip", "not_gzip"),
        key(3, "TruncatedGzip000"): (gzip.compress(good)[:-20], "truncated_gzip"),
        key(4, "NotJsonNotJson00"): (gzip.compress(b"<html>503</html>"), "not_json"),
        key(5, "NoRecordsNoRecor"): (gzip.compress(b'{"foo": []}'), "not_cloudtrail"),
        key(6, "DigestInWrongPla"): (gzip.compress(digest), "not_cloudtrail"),
        key(7, "EmptyEmptyEmpty0"): (gzip.compress(b""), "empty_file"),
    }


def record_file(account: str, region: str, org_id: str) -> tuple[str, bytes, list[str]]:
    """One file with a bad record between good ones, an oversized record and unknown fields."""
    records = generate_records(11, account, region, START, 4)
    records[1]["userIdentity"] = "not-an-object"  # fails the typed decode: record_invalid
    records[2]["someFutureField"] = {"nested": [1, 2, 3]}  # unknown fields are fine
    records[3]["requestParameters"] = {"blob": "x" * (2 * 1024 * 1024)}  # 2 MiB > Kafka's 1 MiB limit
    good = [f"{account}:{records[i]['eventID']}" for i in (0, 2)]
    key = log_key(account, region, START.replace(hour=2), "MixedRecordsFile", org_id=org_id)
    return key, gzip.compress(orjson.dumps({"Records": records})), good


async def test_every_bad_object_and_record_is_dead_lettered_and_good_ones_arrive(
    aws_endpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    def setup() -> tuple[object, dict[str, tuple[bytes, str]], str, list[str]]:
        world = build_organization(aws_endpoint, members=0)
        upload_logs(
            world,
            accounts=world.accounts,
            regions=REGIONS,
            start=START,
            days=1,
            files_per_hour=1,
            records_per_file=(1, 20),
            collect_ids=True,
        )
        account = world.accounts[0]
        bad = bad_objects(account, REGIONS[0], world.org_id)
        mixed_key, mixed_body, mixed_good = record_file(account, REGIONS[0], world.org_id)
        s3 = client(aws_endpoint, "s3")
        for key, (body, _) in bad.items():
            s3.put_object(Bucket=world.bucket, Key=key, Body=body)
        s3.put_object(Bucket=world.bucket, Key=mixed_key, Body=mixed_body)
        return world, bad, mixed_key, world.event_ids + mixed_good

    _, bad, mixed_key, expected_ids = await asyncio.to_thread(setup)
    topic = await topics(kafka_bootstrap)
    settings = settings_for(aws_endpoint, kafka_bootstrap, topic, tmp_path)

    stats = await run(settings, stop=asyncio.Event(), once=True)

    assert sorted(await event_ids(kafka_bootstrap, topic)) == sorted(expected_ids)
    letters = [msgspec.json.decode(r.value) for r in await read_all(kafka_bootstrap, f"{topic}-dlq", 60)]
    by_key = {(letter["key"], letter["reason"]) for letter in letters}
    assert {(key, reason) for key, (_, reason) in bad.items()} <= by_key
    mixed = sorted((letter["reason"], letter["record_index"]) for letter in letters if letter["key"] == mixed_key)
    assert mixed == [("record_invalid", 1), ("record_too_large", -1)]
    invalid = next(letter for letter in letters if letter["reason"] == "record_invalid")
    assert "$.userIdentity" in invalid["detail"] and mixed_key in invalid["detail"]
    assert len(letters) == len(bad) + 2
    assert stats.objects_rejected == len(bad)
    assert stats.dead_letters == len(bad) + 2

    again = await run(settings, stop=asyncio.Event(), once=True)
    assert (again.objects_delivered, again.objects_rejected, again.dead_letters) == (0, 0, 0)
