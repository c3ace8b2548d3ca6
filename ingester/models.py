"""The values that flow between pipeline stages.

discovery -> :class:`Shard`; sources -> :class:`LogObject`; codec -> :class:`OutboundRecord` /
:class:`DeadLetter`; sinks acknowledge; checkpoint records a :class:`Settlement` per object.
Plain frozen Structs: cheap to create, hashable where they are used as keys, no behaviour beyond naming.
"""

from __future__ import annotations

import enum

import msgspec


class Shard(msgspec.Struct, frozen=True, kw_only=True):
    """One (trail, account, region) log prefix: the unit of listing, ordering and checkpointing."""

    trail_arn: str
    bucket: str
    # The trail's S3KeyPrefix ("" when none), without trailing slash.
    key_prefix: str
    # "o-abc123" for an organization trail (its logs live under AWSLogs/<org-id>/<account>/), else "".
    org_id: str
    account_id: str
    region: str
    # Account whose credentials read the bucket (the trail's home account).
    reader_account: str
    # The trail has log file validation enabled: CloudTrail writes signed hourly digests next to the logs.
    log_validation: bool = False

    @property
    def log_prefix(self) -> str:
        """``[prefix/]AWSLogs/[o-id/]<account>/CloudTrail/<region>/``; digest and insight prefixes are siblings."""
        head = f"{self.key_prefix}/" if self.key_prefix else ""
        org = f"{self.org_id}/" if self.org_id else ""
        return f"{head}AWSLogs/{org}{self.account_id}/CloudTrail/{self.region}/"

    @property
    def shard_id(self) -> str:
        """Stable identity: where the logs are, so two trails writing the same place are collected once."""
        return f"s3://{self.bucket}/{self.log_prefix}"


# A shard's second checkpoint stream (its digests, ingester/integrity/audit.py) is ``<shard id>#digests``.
DIGEST_STREAM_SUFFIX = "#digests"


class LogObject(msgspec.Struct, frozen=True):
    """One listed S3 object of a shard."""

    key: str
    size: int
    # S3's LastModified (Unix seconds; 0 when unknown): tells the deep re-list whether a regular pass could
    # have seen the object (ingester/checkpoint/passes.py).
    last_modified: float = 0.0


class OutboundRecord(msgspec.Struct, frozen=True, gc=False):
    """One encoded event, ready for any sink; ``partition_key`` keeps one account's events together."""

    key: bytes
    value: bytes
    timestamp_ms: int
    partition_key: bytes
    # Kafka headers (account, region, eventSource, eventName, class): consumers route without parsing; then the
    # file's provenance (origin, originRecords, shardWatermark; codec/provenance.py) for rebuilding a checkpoint.
    headers: tuple[tuple[str, bytes], ...] = ()
    # The topic a [[routes]] entry sends it to; "" = the sink's default topic (kafka.topic).
    topic: str = ""


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A permanent failure, with enough context to find and replay the input."""

    shard_id: str
    bucket: str
    key: str
    # Bounded vocabulary for metrics and routing: "corrupt_gzip", "not_json", "record_invalid", ...
    reason: str
    detail: str
    # Index of the record inside the file, or -1 when the whole object failed.
    record_index: int = -1
    # The offending record's raw bytes (or a prefix of them), when there is one.
    record: str = ""


class Settlement(enum.Enum):
    """How one object ended; only DELIVERED and REJECTED let the checkpoint pass it."""

    DELIVERED = "delivered"
    REJECTED = "rejected"
    ERRORED = "errored"
