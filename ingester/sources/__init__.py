"""Where log objects come from: S3 listing and fetch (s3.py), a local directory (local.py), SQS notifications
(sqs.py); key arithmetic in keys.py. Shard jobs and workers see a source only through :class:`LogSource`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from ingester.models import LogObject, Shard


class LogSource(Protocol):
    """What a shard job lists and a worker fetches; S3Source and LocalSource implement it."""

    requests: int
    list_requests: int

    def list_shard(self, shard: Shard, start: datetime | None, now: datetime) -> AsyncIterator[LogObject]:
        """Every object of the shard from ``start`` (None = earliest stored) through tomorrow, in key order."""
        ...

    async def get(self, key: str) -> bytes: ...
