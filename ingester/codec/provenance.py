"""Where a Kafka record came from, in three headers, so a lost checkpoint can be rebuilt from the topic.

Every event record carries, besides the routing headers of encode.py:

    origin           s3://<bucket>/<key> of the CloudTrail file it was read from
    originRecords    how many records the file holds, rejected ones included (decimal): the file is entirely in the
                     topic once that many distinct event ids carry its origin, so one with a dead letter never is
    shardWatermark   the shard's committable watermark when the file was encoded (absent: none yet); a state the
                     checkpoint could have held at that instant, never ahead of what was acknowledged

checkpoint/rebuild.py reads them back from the tail of the topic. About 250 bytes per record before compression;
they repeat within a file, so zstd / lz4 batches carry a small fraction of that.
"""

from __future__ import annotations

import msgspec

from ingester.models import Shard

ORIGIN = "origin"
ORIGIN_RECORDS = "originRecords"
SHARD_WATERMARK = "shardWatermark"

Headers = tuple[tuple[str, bytes], ...]


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str
    key: str
    records: int
    watermark: str | None


def provenance_headers(shard: Shard, key: str, *, records: int, watermark: str | None) -> Headers:
    """The three headers of one file's records (built once per file; encode.py appends them to each record)."""
    headers: Headers = (
        (ORIGIN, f"s3://{shard.bucket}/{key}".encode()),
        (ORIGIN_RECORDS, str(records).encode()),
    )
    if watermark is not None:
        headers += ((SHARD_WATERMARK, watermark.encode()),)
    return headers


def read_provenance(headers: Headers | list[tuple[str, bytes]]) -> Provenance | None:
    """The provenance of a record read back, or None when it has none (written by a version before these
    headers, or by another producer) or it is malformed."""
    found = {name: value for name, value in headers if name in (ORIGIN, ORIGIN_RECORDS, SHARD_WATERMARK)}
    try:
        origin = found[ORIGIN].decode()
        records = int(found[ORIGIN_RECORDS])
        watermark = found[SHARD_WATERMARK].decode() if SHARD_WATERMARK in found else None
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    bucket, slash, key = origin.removeprefix("s3://").partition("/")
    if not origin.startswith("s3://") or not slash or not bucket or not key or records < 0:
        return None
    return Provenance(bucket=bucket, key=key, records=records, watermark=watermark)
