"""S3: list a shard's log files in key order, and fetch one object. The only module that talks to S3.

Listing is day by day (``.../YYYY/MM/DD/``) with ``StartAfter`` on the first day, paginated (moto's and S3's
page is at most 1000 keys; moto defaults to 100). When no start time is configured the earliest stored day is
found with three delimiter listings (years, months, days) instead of scanning the bucket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from ingester.errors import ObjectGoneError, SourceError
from ingester.models import LogObject, Shard
from ingester.sources import list_in_order
from ingester.sources.s3_get import HttpError, SignedGetter

# What a request can raise besides botocore's own errors: aiohttp's (a connection reset mid-body is a
# ClientPayloadError, which botocore does not wrap), sockets and timeouts. All transient.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
# Listing errors that mean the bucket itself is gone or closed to this reader: the whole shard waits (with a
# long backoff) instead of dead-lettering anything.
BUCKET_CODES = frozenset({"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "403", "Forbidden"})

# S3 error codes after which retrying the same key cannot help.
_PERMANENT_CODES = frozenset(
    {"NoSuchKey", "404", "NotFound", "AccessDenied", "403", "Forbidden", "InvalidObjectState", "NoSuchBucket"}
)


def translate(exc: Exception, what: str) -> SourceError:
    """botocore / aiohttp (and s3_get's HttpError) -> SourceError (retriable: throttling, 5xx, network,
    connection reset mid-body, expired token) or ObjectGoneError (404/403). ``code`` keeps S3's error code for
    the shard's fault report."""
    if isinstance(exc, ClientError | HttpError):
        if isinstance(exc, HttpError):
            code, status = exc.code, exc.status
        else:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _PERMANENT_CODES or status in (403, 404):
            return ObjectGoneError(f"{what}: {code or status}: {exc}", code=code or str(status))
        return SourceError(f"{what}: {code or status}: {exc}", code=code or str(status))
    return SourceError(f"{what}: {type(exc).__name__}: {exc}", code=type(exc).__name__)


class S3Source:
    """Reads one bucket with one account's client. With ``getter`` (s3_get.py), log files are fetched and day
    folders listed by it instead of the client's GetObject and ListObjectsV2: same errors, a fraction of the CPU
    per request; delimiter listings (finding the earliest day), HEADs and digests (their signature is in the
    object's metadata) stay on the client."""

    def __init__(self, client: Any, bucket: str, getter: SignedGetter | None = None) -> None:
        self._client = client
        self._bucket = bucket
        self._getter = getter
        self.requests = 0
        self.list_requests = 0

    async def list_after(self, prefix: str, start_after: str | None) -> AsyncIterator[LogObject]:
        if self._getter is not None and self._getter.url is None and self._getter.listings_teach:
            await self._teach(self._getter, prefix)
        if self._getter is not None and self._getter.url is not None:
            async for item in self._list_direct(self._getter, prefix, start_after):
                yield item
            return
        params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": 1000}
        if start_after:
            params["StartAfter"] = start_after
        while True:
            self.list_requests += 1
            page = await self._call("list_objects_v2", f"s3://{self._bucket}/{prefix}", **params)
            for item in page.get("Contents", ()):
                modified = item.get("LastModified")
                stamp = modified.timestamp() if modified is not None else 0.0
                yield LogObject(item["Key"], int(item.get("Size", 0)), stamp)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    async def _teach(self, getter: SignedGetter, prefix: str) -> None:
        """One small botocore listing (one key) teaches the getter the bucket's URL, while the shards that list
        meanwhile wait for it: without this, every shard's first listing at start-up went through botocore
        before any had taught the getter, and botocore's parse of a page costs ~130 us per key (ElementTree's,
        ~8). An endpoint whose listing does not teach (a URL the getter cannot reuse) is not probed again:
        botocore lists there."""
        async with getter.teaching:
            if getter.url is not None or not getter.listings_teach:
                return
            self.list_requests += 1
            with getter.learning(None, self._bucket):
                await self._call(
                    "list_objects_v2", f"s3://{self._bucket}/{prefix}", Bucket=self._bucket, Prefix=prefix, MaxKeys=1
                )
            if getter.url is None:
                getter.listings_teach = False

    async def _list_direct(
        self, getter: SignedGetter, prefix: str, start_after: str | None
    ) -> AsyncIterator[LogObject]:
        token: str | None = None
        while True:
            self.requests += 1
            self.list_requests += 1
            try:
                page, token = await getter.list_page(prefix, start_after, token)
            except (HttpError, *_TRANSPORT_ERRORS) as exc:
                raise translate(exc, f"s3://{self._bucket}/{prefix}") from exc
            for item in page:
                yield item
            if token is None:
                return

    async def child_prefixes(self, prefix: str) -> list[str]:
        """Immediate "folders" under ``prefix``, sorted."""
        found: list[str] = []
        params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "Delimiter": "/"}
        while True:
            self.list_requests += 1
            page = await self._call("list_objects_v2", f"s3://{self._bucket}/{prefix}", **params)
            found.extend(item["Prefix"] for item in page.get("CommonPrefixes", ()))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return sorted(found)
            params["ContinuationToken"] = token

    async def earliest_day(self, shard: Shard, prefix: str | None = None) -> date | None:
        """First ``YYYY/MM/DD`` folder under the shard (or another dated prefix), None when there is none."""
        prefix = shard.log_prefix if prefix is None else prefix
        parts: list[int] = []
        for _ in range(3):
            children = [c for c in await self.child_prefixes(prefix) if c[len(prefix) : -1].isdigit()]
            if not children:
                return None
            prefix = children[0]
            parts.append(int(prefix.rstrip("/").rsplit("/", 1)[-1]))
        try:
            return date(parts[0], parts[1], parts[2])
        except ValueError:
            return None

    async def list_shard(self, shard: Shard, start: datetime | None, now: datetime) -> AsyncIterator[LogObject]:
        """Every object of the shard from ``start`` (None = earliest stored) through today, in key order.

        Lists one day beyond ``now`` because a file near midnight can carry tomorrow's date."""
        async for item in list_in_order(self, shard, start, now):
            yield item

    async def get(self, key: str) -> bytes:
        if self._getter is None:
            return (await self.get_with_metadata(key))[0]
        if self._getter.url is None:  # botocore's GET, whose request teaches the getter the bucket's URL
            with self._getter.learning(key, self._bucket):
                return (await self.get_with_metadata(key))[0]
        self.requests += 1
        try:
            return await self._getter.get(key)
        except (HttpError, *_TRANSPORT_ERRORS) as exc:
            raise translate(exc, f"s3://{self._bucket}/{key}") from exc

    async def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The object and its user metadata (a digest's signature lives there)."""
        what = f"s3://{self._bucket}/{key}"
        response = await self._call("get_object", what, Bucket=self._bucket, Key=key)
        try:
            async with response["Body"] as stream:
                body: bytes = await stream.read()
        except (BotoCoreError, *_TRANSPORT_ERRORS) as exc:
            raise translate(exc, what) from exc
        return body, dict(response.get("Metadata") or {})

    async def size(self, key: str) -> int:
        """HeadObject's size: the byte budget of a file a digest names but no listing returned."""
        response = await self._call("head_object", f"s3://{self._bucket}/{key}", Bucket=self._bucket, Key=key)
        return int(response.get("ContentLength", 0))

    async def _call(self, operation: str, what: str, **params: Any) -> Any:
        self.requests += 1
        try:
            return await getattr(self._client, operation)(**params)
        except (ClientError, BotoCoreError, *_TRANSPORT_ERRORS) as exc:
            raise translate(exc, what) from exc
