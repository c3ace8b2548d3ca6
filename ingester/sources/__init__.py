"""Where log objects come from: S3 listing and fetch (s3.py), a local directory (local.py), SQS notifications
(sqs.py); key arithmetic in keys.py. Shard jobs and workers see a source only through :class:`LogSource`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Protocol

from ingester.models import LogObject, Shard
from ingester.sources.keys import listing_plan


class LogSource(Protocol):
    """What a shard job lists and a worker fetches; S3Source and LocalSource implement it."""

    requests: int
    list_requests: int

    def list_shard(self, shard: Shard, start: datetime | None, now: datetime) -> AsyncIterator[LogObject]:
        """Every object of the shard from ``start`` (None = earliest stored) through tomorrow, in key order."""
        ...

    async def get(self, key: str) -> bytes: ...


class DayLister(Protocol):
    """What :func:`list_in_order` needs of a source: one folder's listing, and the earliest dated folder."""

    def list_after(self, prefix: str, start_after: str | None) -> AsyncIterator[LogObject]: ...

    async def earliest_day(self, shard: Shard, prefix: str | None = None) -> date | None: ...


async def start_or_earliest(
    source: DayLister, shard: Shard, start: datetime | None, prefix: str | None = None
) -> datetime | None:
    """``start``, else midnight of the earliest ``YYYY/MM/DD`` folder under ``prefix`` (the shard's log prefix by
    default); None when there is none."""
    if start is not None:
        return start
    first = await source.earliest_day(shard, prefix)
    return None if first is None else datetime(first.year, first.month, first.day, tzinfo=UTC)


async def list_in_order(
    source: DayLister, shard: Shard, start: datetime | None, now: datetime
) -> AsyncIterator[LogObject]:
    """Every object of the shard from ``start`` (None = earliest stored day) through the day after ``now``, in
    key order, day folder by day folder: the one listing S3Source and LocalSource both do."""
    begin = await start_or_earliest(source, shard, start)
    if begin is None:
        return
    for prefix, start_after in listing_plan(shard, begin, now):
        async for item in source.list_after(prefix, start_after):
            yield item
