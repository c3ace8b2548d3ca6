"""Pure functions over CloudTrail S3 keys: where to list, in what order, and from which point to resume.

Within one shard, a key's lexicographic order is its time order (``YYYY/MM/DD/`` then
``<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<rand>``), which is what lets a checkpoint be a key. Files of
the same minute sort by their random suffix and can be *delivered* in any order, and delivery can lag by many
minutes: so listing always resumes ``lookback`` before the checkpoint and filters by the settled keys it
remembers (see :mod:`ingester.checkpoint.watermark`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from ingester.models import Shard

# <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<rand>.json.gz
_LOG_NAME = re.compile(r"_CloudTrail_[a-z0-9-]+_(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)Z_[A-Za-z0-9]+\.json(?:\.gz)?$")
# The shard part of a log key: [prefix/]AWSLogs/[o-id/]<account>/CloudTrail/<region>/
_SHARD_PREFIX = re.compile(r"^(.*?AWSLogs/(?:o-[a-z0-9]+/)?\d{12}/CloudTrail/[a-z0-9-]+/)")
# The shard's day folder; not anchored at the name, so an object nested below a day folder still has a day.
_DAY_PATH = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/")


def shard_id_of(bucket: str, key: str) -> str | None:
    """The id of the shard a log file belongs to (:attr:`Shard.shard_id`: ``s3://<bucket>/<log prefix>``), or
    None for a key that is not a log file (a digest, an Insights file, anything outside a CloudTrail/ prefix)."""
    match = _SHARD_PREFIX.match(key)
    if match is None or not is_log_key(key):
        return None
    return f"s3://{bucket}/{match.group(1)}"


def is_log_key(key: str) -> bool:
    """A CloudTrail log file name with a real minute in it (digest and insight files live under other prefixes
    and other names). Only such keys may become a watermark: the watermark's time is where listing resumes."""
    return name_time(key) is not None


def name_time(key: str) -> datetime | None:
    """The minute in a log file's name; None when the name is not a log file's or its time is impossible
    (``..._20261130T2399Z_...``): such keys are dead-lettered as ``bad_key``, never parsed further."""
    match = _LOG_NAME.search(key)
    if match is None:
        return None
    try:  # datetime() of the digits: strptime cost ~1.5% of a small file's CPU (every key, listed and settled)
        year, month, day, hour, minute = map(int, match.groups())
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None


def key_time(key: str) -> datetime | None:
    """The minute in the file name, else the day folder in the path, else None. The day fallback also reads a
    watermark stored by an older version that let a non-log key become one: it resumes at that day, not at the
    start of history."""
    when = name_time(key)
    if when is not None:
        return when
    day = _DAY_PATH.search(key)
    if day is not None:
        try:
            return datetime(int(day.group(1)), int(day.group(2)), int(day.group(3)), tzinfo=UTC)
        except ValueError:
            return None
    return None


def day_prefix(shard: Shard, day: date) -> str:
    return f"{shard.log_prefix}{day:%Y/%m/%d}/"


def time_floor_key(shard: Shard, when: datetime) -> str:
    """A key that sorts just before every real log file of minute ``when`` (and after every earlier one)."""
    when = when.astimezone(UTC)
    return f"{day_prefix(shard, when.date())}{shard.account_id}_CloudTrail_{shard.region}_{when:%Y%m%dT%H%MZ}"


def minute_key(shard: Shard, when: datetime) -> str:
    """A log-file-shaped key of minute ``when`` that sorts before every real file of that minute (the suffix ``0``
    then ``.``): a watermark set by hand (``ingester checkpoint reset``) that :func:`key_time` reads as ``when``."""
    return f"{time_floor_key(shard, when)}_0.json.gz"


def resume_point(watermark: str | None, lookback: timedelta) -> datetime | None:
    """Listing restarts ``lookback`` before the watermark's time, to catch files delivered late."""
    if watermark is None:
        return None
    when = key_time(watermark)
    return None if when is None else when - lookback


def listing_plan(shard: Shard, start: datetime, now: datetime) -> Iterator[tuple[str, str | None]]:
    """(day prefix, StartAfter) for every day from ``start`` through the day after ``now`` (a file near
    midnight can carry tomorrow's date); only the first day starts after the floor key of ``start``."""
    floor = time_floor_key(shard, start)
    for day in days(start.astimezone(UTC).date(), (now + timedelta(days=1)).date()):
        prefix = day_prefix(shard, day)
        yield prefix, floor if floor.startswith(prefix) else None


def days(start: date, end: date) -> Iterator[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    current = start
    while current <= end:
        yield current
        current += timedelta(days=1)
