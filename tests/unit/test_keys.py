"""ingester.sources.keys: which S3 keys are log files, their time, and the listing floor / resume point."""

from __future__ import annotations

import random
import string
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from ingester.models import Shard
from ingester.sources.keys import day_prefix, days, is_log_key, key_time, resume_point, shard_id_of, time_floor_key

SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-east-2:111122223333:trail/main",
    bucket="audit-logs",
    key_prefix="",
    org_id="",
    account_id="111122223333",
    region="us-east-2",
    reader_account="111122223333",
)
ORG_SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:eu-west-1:999988887777:trail/org",
    bucket="org-audit",
    key_prefix="cloudtrail/prod",
    org_id="o-exampleorgid",
    account_id="123456789012",
    region="eu-west-1",
    reader_account="999988887777",
)

# Shapes as CloudTrail writes them (<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 random chars>.json.gz).
REAL_LOG_KEYS = [
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz",
    "AWSLogs/123456789012/CloudTrail/us-gov-west-1/2023/01/31/123456789012_CloudTrail_us-gov-west-1_20230131T2355Z_Zz09aAbBcCdDeEfF.json.gz",
    "cloudtrail/prod/AWSLogs/o-exampleorgid/123456789012/CloudTrail/eu-west-1/2024/02/29/123456789012_CloudTrail_eu-west-1_20240229T0000Z_0abcdefghijklmno.json.gz",
    # Uncompressed files are accepted by the decoder, so the name matches them too.
    "AWSLogs/111122223333/CloudTrail/ap-southeast-2/2024/05/06/111122223333_CloudTrail_ap-southeast-2_20240506T1010Z_AAAAAAAAAAAAAAAA.json",
]
NOT_LOG_KEYS = [
    "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz",
    "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2019/11/14/111122223333_CloudTrail-Insight_us-east-1_20191114T0055Z_ZrNvbLmYgIcSqPtd.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz.tmp",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_2015081T1445Z_9nYN7gp2eWAJHIfT.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.csv",
    "AWSLogs/111122223333/CloudTrail/US-EAST-2/2015/08/17/111122223333_CloudTrail_US-EAST-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT!.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz/x",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.JSON.GZ",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817T14:45Z_9nYN7gp2eWAJHIfT.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrail_us-east-2_20150817_9nYN7gp2eWAJHIfT.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/111122223333_CloudTrailFoo_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz",
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/README.txt",
    "",
    "_CloudTrail_",
    "random junk $%^&",
]


def _log_key(shard: Shard, when: datetime, suffix: str) -> str:
    name = f"{shard.account_id}_CloudTrail_{shard.region}_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz"
    return day_prefix(shard, when.date()) + name


def _suffixes(rng: random.Random, count: int) -> list[str]:
    alphabet = string.ascii_letters + string.digits
    # The extremes of the alphabet are what a sloppy floor gets wrong: '0' sorts lowest, 'z' highest.
    fixed = ["0000000000000000", "0abcdefghijklmno", "AAAAAAAAAAAAAAAA", "Azzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzz", "z0"]
    return fixed + ["".join(rng.choice(alphabet) for _ in range(16)) for _ in range(count)]


@pytest.mark.parametrize("key", REAL_LOG_KEYS)
def test_is_log_key_accepts_real_log_file_names(key: str) -> None:
    assert is_log_key(key) is True


@pytest.mark.parametrize("key", NOT_LOG_KEYS)
def test_is_log_key_rejects_digests_insights_and_junk(key: str) -> None:
    assert is_log_key(key) is False


def test_is_log_key_on_documented_keys(corpus_digests: list[dict[str, Any]]) -> None:
    """The digest files AWS documents name both log files (logFiles[].s3Object) and other digests."""
    log_keys = [entry["s3Object"] for digest in corpus_digests for entry in digest["logFiles"]]
    digest_keys = [
        key for digest in corpus_digests for key in (digest["digestS3Object"], digest["previousDigestS3Object"])
    ]

    assert log_keys, "the corpus digests should list at least one log file"
    assert [key for key in log_keys if not is_log_key(key)] == []
    assert [key for key in digest_keys if is_log_key(key)] == []


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (REAL_LOG_KEYS[0], datetime(2015, 8, 17, 14, 45, tzinfo=UTC)),
        (REAL_LOG_KEYS[1], datetime(2023, 1, 31, 23, 55, tzinfo=UTC)),
        (REAL_LOG_KEYS[2], datetime(2024, 2, 29, 0, 0, tzinfo=UTC)),
        # Not a log name: the day of the path.
        (NOT_LOG_KEYS[0], datetime(2015, 8, 17, tzinfo=UTC)),
        ("AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/", datetime(2015, 8, 17, tzinfo=UTC)),
        ("AWSLogs/111122223333/CloudTrail/us-east-2/2015/13/45/whatever.json.gz", None),
        ("random junk", None),
        ("", None),
    ],
)
def test_key_time(key: str, expected: datetime | None) -> None:
    assert key_time(key) == expected


def test_key_time_of_built_keys_is_utc_minute() -> None:
    when = datetime(2024, 12, 31, 23, 59, tzinfo=UTC)

    got = key_time(_log_key(ORG_SHARD, when, "9nYN7gp2eWAJHIfT"))

    assert got == when
    assert got is not None
    assert got.utcoffset() == timedelta(0)


def test_day_prefix_follows_the_shard_layout() -> None:
    assert day_prefix(SHARD, date(2015, 8, 7)) == "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/07/"
    assert (
        day_prefix(ORG_SHARD, date(2024, 2, 29))
        == "cloudtrail/prod/AWSLogs/o-exampleorgid/123456789012/CloudTrail/eu-west-1/2024/02/29/"
    )


@pytest.mark.parametrize("shard", [SHARD, ORG_SHARD], ids=["plain", "org-prefixed"])
@pytest.mark.parametrize(
    "when",
    [
        datetime(2024, 3, 10, 14, 5, tzinfo=UTC),
        datetime(2024, 3, 10, 0, 0, tzinfo=UTC),  # previous minute is on the previous day
        datetime(2024, 3, 1, 0, 0, tzinfo=UTC),  # ... and in the previous month
        datetime(2025, 1, 1, 0, 0, tzinfo=UTC),  # ... and year
        datetime(2024, 3, 10, 10, 0, tzinfo=UTC),  # previous minute is in the previous hour
    ],
)
def test_time_floor_key_separates_the_minute_from_the_previous_one(shard: Shard, when: datetime) -> None:
    rng = random.Random(f"{shard.account_id}-{when.isoformat()}")
    suffixes = _suffixes(rng, 50)
    floor = time_floor_key(shard, when)
    this_minute = [_log_key(shard, when, suffix) for suffix in suffixes]
    previous_minute = [_log_key(shard, when - timedelta(minutes=1), suffix) for suffix in suffixes]
    next_minute = [_log_key(shard, when + timedelta(minutes=1), suffix) for suffix in suffixes]

    assert all(is_log_key(key) for key in this_minute + previous_minute)
    assert [key for key in this_minute if not floor < key] == []
    assert [key for key in previous_minute if not key < floor] == []
    assert [key for key in next_minute if not floor < key] == []
    # Sorting everything puts the floor exactly between the two minutes.
    ordered = sorted([*previous_minute, floor, *this_minute])
    assert ordered.index(floor) == len(previous_minute)


def test_time_floor_key_converts_other_time_zones_to_utc() -> None:
    minus_five = datetime(2024, 3, 9, 20, 5, tzinfo=timezone(timedelta(hours=-5)))
    plus_two = datetime.fromisoformat("2024-03-10T03:05:00+02:00")

    assert time_floor_key(SHARD, plus_two) == time_floor_key(SHARD, datetime(2024, 3, 10, 1, 5, tzinfo=UTC))
    assert time_floor_key(SHARD, minus_five) == time_floor_key(SHARD, datetime(2024, 3, 10, 1, 5, tzinfo=UTC))
    assert time_floor_key(SHARD, plus_two) == (
        "AWSLogs/111122223333/CloudTrail/us-east-2/2024/03/10/111122223333_CloudTrail_us-east-2_20240310T0105Z"
    )


def test_time_floor_key_ignores_seconds() -> None:
    exact = datetime(2024, 3, 10, 14, 5, tzinfo=UTC)

    assert time_floor_key(SHARD, exact.replace(second=59, microsecond=999)) == time_floor_key(SHARD, exact)


def test_resume_point_is_lookback_before_the_watermark_time() -> None:
    watermark = REAL_LOG_KEYS[0]  # 2015-08-17T14:45Z

    assert resume_point(watermark, timedelta(hours=3)) == datetime(2015, 8, 17, 11, 45, tzinfo=UTC)
    assert resume_point(watermark, timedelta(0)) == datetime(2015, 8, 17, 14, 45, tzinfo=UTC)
    assert resume_point(watermark, timedelta(days=1)) == datetime(2015, 8, 16, 14, 45, tzinfo=UTC)


def test_resume_point_without_watermark_or_time() -> None:
    assert resume_point(None, timedelta(hours=3)) is None
    assert resume_point("not a key", timedelta(hours=3)) is None


def test_resume_floor_lists_the_watermark_again() -> None:
    """The floor built from the resume point sorts before the watermark, so late files of the window are listed."""
    watermark = _log_key(SHARD, datetime(2024, 3, 10, 14, 5, tzinfo=UTC), "m0000000000000000")
    when = resume_point(watermark, timedelta(minutes=30))
    assert when is not None

    floor = time_floor_key(SHARD, when)

    assert floor < watermark
    assert floor < _log_key(SHARD, datetime(2024, 3, 10, 13, 35, tzinfo=UTC), "0")
    assert _log_key(SHARD, datetime(2024, 3, 10, 13, 34, tzinfo=UTC), "z") < floor


def test_days_is_inclusive_and_crosses_month_and_leap_day() -> None:
    assert list(days(date(2024, 2, 27), date(2024, 3, 2))) == [
        date(2024, 2, 27),
        date(2024, 2, 28),
        date(2024, 2, 29),
        date(2024, 3, 1),
        date(2024, 3, 2),
    ]


def test_days_single_and_empty() -> None:
    assert list(days(date(2024, 1, 1), date(2024, 1, 1))) == [date(2024, 1, 1)]
    assert list(days(date(2024, 1, 2), date(2024, 1, 1))) == []


def test_days_over_a_year_boundary() -> None:
    got = list(days(date(2023, 12, 30), date(2024, 1, 2)))

    assert got == [date(2023, 12, 30), date(2023, 12, 31), date(2024, 1, 1), date(2024, 1, 2)]


@pytest.mark.parametrize(
    ("key", "shard"),
    [
        (
            "AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2026/12/02/"
            "111122223333_CloudTrail_eu-west-1_20261202T0105Z_AbC.json.gz",
            "s3://b/AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/",
        ),
        (
            "team/logs/AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/02/"
            "111122223333_CloudTrail_us-east-1_20261202T0105Z_x.json.gz",
            "s3://b/team/logs/AWSLogs/111122223333/CloudTrail/us-east-1/",
        ),
        (
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/12/02/"
            "111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20261202T0105Z.json.gz",
            None,
        ),
        ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/02/notes.txt", None),
        ("elsewhere/file.json.gz", None),
    ],
)
def test_the_shard_of_a_notified_key(key: str, shard: str | None) -> None:
    assert shard_id_of("b", key) == shard
