"""The pure decisions behind fault isolation: which keys may become a watermark, how a shard's fault is named
and backed off, which shards survive a failed discovery, and which files the deep re-list must collect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingester.checkpoint.passes import CLOCK_SKEW, PassHistory
from ingester.checkpoint.watermark import OrderedWatermark
from ingester.connect.aws import refresh_margins
from ingester.discovery.accounts import Organization
from ingester.discovery.discover import AccountFailure, Discovery
from ingester.errors import CheckpointError, DiscoveryError, ObjectGoneError, SourceError
from ingester.models import Settlement, Shard
from ingester.pipeline.jobs import FAULT_BACKOFF_SECONDS, fault_backoff, fault_kind
from ingester.pipeline.runtime import keep_failed
from ingester.sources.keys import is_log_key, key_time, name_time, resume_point

DAY = "AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2026/11/30"
GOOD = f"{DAY}/111122223333_CloudTrail_us-east-1_20261130T2355Z_abcdEFGH1234.json.gz"


@pytest.mark.parametrize(
    "key",
    [
        f"{DAY}/111122223333_CloudTrail_us-east-1_20261130T2399Z_abcdEFGH1234.json.gz",  # minute 99
        f"{DAY}/111122223333_CloudTrail_us-east-1_20261331T0000Z_abcdEFGH1234.json.gz",  # month 13
        f"{DAY}/zz-extra/notes.json.gz",
        f"{DAY}/readme.txt",
    ],
)
def test_keys_that_are_not_log_files_never_parse_as_one(key: str) -> None:
    assert not is_log_key(key)
    assert name_time(key) is None
    # A watermark stored by an older version resumes at its day folder, not at the start of history.
    assert key_time(key) == datetime(2026, 11, 30, tzinfo=UTC)
    assert resume_point(key, timedelta(hours=1)) == datetime(2026, 11, 29, 23, tzinfo=UTC)


def test_a_log_key_parses() -> None:
    assert is_log_key(GOOD)
    assert name_time(GOOD) == datetime(2026, 11, 30, 23, 55, tzinfo=UTC)


def test_aside_keys_never_move_the_watermark() -> None:
    tracker = OrderedWatermark(None, set())
    tracker.register(GOOD)
    tracker.settle(GOOD, Settlement.DELIVERED)
    nested = f"{DAY}/zz-extra/notes.json.gz"
    tracker.hold_aside(nested)
    assert not tracker.wants(nested) and not tracker.idle
    tracker.settle_aside(nested, Settlement.REJECTED)
    assert tracker.watermark == GOOD
    assert not tracker.wants(nested) and tracker.idle
    errored = f"{DAY}/other.json.gz"
    tracker.hold_aside(errored)
    tracker.settle_aside(errored, Settlement.ERRORED)
    assert tracker.wants(errored)  # whatever found it finds it again


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ObjectGoneError("s3://b/p: NoSuchBucket", code="NoSuchBucket"), "bucket_unavailable"),
        (ObjectGoneError("s3://b/p: AccessDenied", code="AccessDenied"), "bucket_unavailable"),
        (SourceError("s3://b/p: SlowDown", code="SlowDown"), "s3"),
        (DiscoveryError("AssumeRole failed"), "credentials"),
        (CheckpointError("disk full"), "checkpoint"),
        (KeyError("a bug"), "internal"),
    ],
)
def test_fault_kind(exc: Exception, kind: str) -> None:
    assert fault_kind(exc) == kind


def test_fault_backoff_grows_and_is_capped() -> None:
    first = [fault_backoff(1, 600) for _ in range(50)]
    assert all(FAULT_BACKOFF_SECONDS / 2 <= d <= FAULT_BACKOFF_SECONDS for d in first)
    assert all(300 <= fault_backoff(30, 600) <= 600 for _ in range(50))
    assert all(fault_backoff(30, 2) <= FAULT_BACKOFF_SECONDS for _ in range(50))


def shard(account: str, bucket: str = "b") -> Shard:
    return Shard(
        trail_arn="t", bucket=bucket, key_prefix="", org_id="", account_id=account, region="r", reader_account=account
    )


def test_a_failed_account_keeps_its_shards_and_a_described_one_loses_gone_trails() -> None:
    running = {s.shard_id: s for s in (shard("111111111111"), shard("222222222222"), shard("333333333333", "c"))}
    found = Discovery(
        Organization("o-1", ("111111111111", "222222222222", "333333333333")),
        (),
        {shard("111111111111").shard_id: shard("111111111111")},
        failures=(AccountFailure("222222222222", "AssumeRole denied"),),
    )
    kept = keep_failed(running, found)
    assert sorted(s.account_id for s in kept.values()) == ["111111111111", "222222222222"]


def test_refresh_margins_scale_with_short_sessions() -> None:
    assert refresh_margins(3600) == (900, 600)
    advisory, mandatory = refresh_margins(900)
    assert (advisory, mandatory) == (225, 150)


T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
FLOOR = f"{DAY}/111122223333_CloudTrail_us-east-1_20261130T1100Z"


def history() -> PassHistory:
    h = PassHistory(lookback=timedelta(hours=1), keep=timedelta(days=2))
    for minute in range(0, 60, 5):
        h.record(T0 + timedelta(minutes=minute), FLOOR)
    return h


def key_at(hhmm: str) -> str:
    return f"{DAY}/111122223333_CloudTrail_us-east-1_20261130T{hhmm}Z_abcdEFGH1234.json.gz"


def test_a_key_below_every_later_floor_was_missed() -> None:
    late = key_at("0900")
    assert history().missed(late, T0 + timedelta(minutes=20), datetime(2026, 11, 30, 9, tzinfo=UTC))


def test_a_key_above_a_later_floor_was_seen() -> None:
    on_time = key_at("1130")
    assert not history().missed(on_time, T0 + timedelta(minutes=20), datetime(2026, 11, 30, 11, 30, tzinfo=UTC))


def test_a_key_stored_after_the_last_pass_below_its_floor_is_missed() -> None:
    assert history().missed(key_at("1000"), T0 + timedelta(hours=2), datetime(2026, 11, 30, 10, tzinfo=UTC))


def test_before_the_history_the_delivery_delay_decides() -> None:
    h = history()
    before = T0 - CLOCK_SKEW * 3
    assert not h.missed(key_at("1030"), before, before - timedelta(minutes=30))  # within lookback: seen then
    assert h.missed(key_at("0800"), before, before - timedelta(hours=4))  # hours late: no pass could see it


def test_history_is_bounded() -> None:
    h = PassHistory(lookback=timedelta(hours=1), keep=timedelta(hours=2))
    for minute in range(0, 24 * 60, 5):
        h.record(T0 + timedelta(minutes=minute), FLOOR)
    assert len(h) <= 2 * 12 + 1
