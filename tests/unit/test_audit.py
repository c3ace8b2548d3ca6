"""The audit's decisions, without I/O: a file's verdict in enforce mode, which digest files are missing, when a
digest may be settled, and how far back a shard must remember settled keys while digests are pending."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from ingester.checkpoint.store import SqliteCheckpointStore
from ingester.checkpoint.watermark import OrderedWatermark
from ingester.config import IntegritySettings
from ingester.coordination.partition import shard_group
from ingester.integrity import Digest, InMemoryPublicKeySource, LogFileEntry, PublicKey, RegionKeys
from ingester.integrity.audit import FileCheck, Pending, ShardAudit, file_verdict, missing, ready
from ingester.models import DIGEST_STREAM_SUFFIX, Settlement, Shard
from ingester.ops.telemetry import Telemetry

SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-east-1:111122223333:trail/t",
    bucket="b",
    key_prefix="",
    org_id="",
    account_id="111122223333",
    region="us-east-1",
    reader_account="111122223333",
    log_validation=True,
)
ENTRY = LogFileEntry(s3_bucket="b", s3_object="k1", hash_value="ab" * 32)


def test_file_verdict() -> None:
    vouched = FileCheck(digest_key="d", time_ms=0, entry=ENTRY)
    assert file_verdict("b", "k1", "ab" * 32, vouched) is None
    mismatch = file_verdict("b", "k1", "cd" * 32, vouched)
    assert mismatch is not None and mismatch.kind == "file_hash_mismatch"
    unlisted = file_verdict("b", "k1", "ab" * 32, FileCheck(digest_key="", time_ms=0, entry=None))
    assert unlisted is not None and unlisted.kind == "file_not_in_digest"
    forged = FileCheck(digest_key="d", time_ms=0, entry=ENTRY, failed="digest_signature_invalid", failed_detail="x")
    verdict = file_verdict("b", "k1", "ab" * 32, forged)
    assert verdict is not None and verdict.kind == "digest_signature_invalid", "a matching hash proves nothing then"


def pending(*keys: str) -> Pending:
    entries = {k: LogFileEntry(s3_bucket="b", s3_object=k, hash_value="00") for k in keys}
    return Pending("digest", None, entries, None)


def test_missing_and_ready() -> None:
    tracker = OrderedWatermark(None, set())
    for key in ("k2", "k3"):
        tracker.register(key)
    tracker.settle("k2", Settlement.DELIVERED)
    digest = pending("k0", "k2", "k3", "k4")
    assert not ready(digest, tracker, floor_key="k1"), "k3 is still in flight"
    tracker.settle("k3", Settlement.ERRORED)
    assert missing(digest, tracker, floor_key="k1") == ["k3", "k4"], "k0 is below the floor: forgotten, not missing"
    assert not ready(digest, tracker, floor_key="k1"), "what is missing is asked for once first"
    digest.requested = True
    assert ready(digest, tracker, floor_key="k1")
    assert ready(pending("k2"), tracker, floor_key=""), "nothing missing, nothing in flight"


def audit(tmp_path: Path, **settings: Any) -> tuple[ShardAudit, SqliteCheckpointStore]:
    store = SqliteCheckpointStore(tmp_path / "c.sqlite")

    async def publish(key: bytes, value: bytes) -> None:
        raise AssertionError("not published in these tests")

    made = ShardAudit(
        SHARD,
        cast(Any, None),  # no S3 call is made by the decisions tested here
        store,
        settings=IntegritySettings(**settings),
        keys=RegionKeys(InMemoryPublicKeySource([])),
        publish=publish,
        telemetry=Telemetry(),
    )
    return made, store


def test_hold_floor_follows_the_digest_watermark_within_the_bound(tmp_path: Path) -> None:
    listing = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    fresh, _ = audit(tmp_path / "a", max_hold_seconds=3600)
    assert fresh.hold_floor(listing) == listing - timedelta(hours=1), "no digest yet: hold the bound"

    (tmp_path / "b").mkdir()
    store = SqliteCheckpointStore(tmp_path / "b" / "c.sqlite")
    digest = (
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/02/"
        "111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20260102T130000Z.json.gz"
    )
    store.commit(SHARD.shard_id + DIGEST_STREAM_SUFFIX, digest, Settlement.DELIVERED, digest)
    store.close()
    reconciled, _ = audit(tmp_path / "b", max_hold_seconds=6 * 3600)
    assert reconciled.hold_floor(listing) == listing - timedelta(hours=1), "digest at 13:00 covers files from 11:00"
    assert reconciled.hold_floor(listing - timedelta(hours=3)) == listing - timedelta(hours=3), "never above listing"
    assert reconciled.hold_floor(listing + timedelta(hours=8)) == listing + timedelta(hours=2), "bounded below"


@pytest.mark.parametrize("groups", [1, 3, 24])
def test_a_shards_digest_stream_lives_in_its_shards_group(groups: int) -> None:
    assert shard_group(SHARD.shard_id + DIGEST_STREAM_SUFFIX, groups) == shard_group(SHARD.shard_id, groups)


async def test_one_key_lookup_per_region_however_many_shards_ask() -> None:
    key = PublicKey(
        fingerprint="f" * 32,
        value=b"der",
        validity_start=datetime(2026, 1, 1, tzinfo=UTC),
        validity_end=datetime(2026, 2, 1, tzinfo=UTC),
    )
    source = InMemoryPublicKeySource([key])
    keys = RegionKeys(source)
    digest = Digest(
        aws_account_id="111122223333",
        digest_start_time="2026-01-10T10:00:00Z",
        digest_end_time="2026-01-10T11:00:00Z",
        digest_s3_bucket="b",
        digest_s3_object="d",
        digest_public_key_fingerprint="f" * 32,
        previous_digest_signature=None,
        log_files=[],
    )
    found = await asyncio.gather(*(keys.key_for(digest) for _ in range(50)))
    assert found == [key] * 50
    assert source.calls == 1
