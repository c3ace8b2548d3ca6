"""The two events integrity emits, as versioned JSON: a completeness report per shard and digest hour, and an alert
per failed check. Pure: built from a shard, a digest and a result; timestamped with the digest's end, never the
wall clock, so the same inputs always encode to the same bytes (replays compact cleanly).

Both are keyed by what they are about (:meth:`CompletenessEvent.message_key`, :meth:`IntegrityAlert.message_key`):
on a compacted topic the latest report for an hour replaces the earlier one, e.g. after a missing file was
collected late.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ingester.integrity.digest import Digest
from ingester.integrity.modes import IntegrityMode, dead_letters
from ingester.integrity.reconcile import Completeness
from ingester.integrity.verify import AlertKind, Violation
from ingester.models import Shard

COMPLETENESS_SCHEMA = "ingester.completeness.v1"
ALERT_SCHEMA = "ingester.integrity_alert.v1"

_ENCODER = msgspec.json.Encoder()


class CompletenessEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One shard's digest hour: files the digest lists, files settled, the keys still missing."""

    schema: str = COMPLETENESS_SCHEMA
    shard_id: str
    trail_arn: str
    account_id: str
    region: str
    digest_bucket: str
    digest_key: str
    # The hour as the digest states it (delivery time, UTC, CloudTrail's strings).
    hour_start: str
    hour_end: str
    files_expected: int
    files_collected: int
    files_missing: int
    missing_keys: list[str]
    complete: bool
    # True when the digest's signature and chain were verified; a completeness claim is only as good as this.
    digest_verified: bool
    time_ms: int

    def message_key(self) -> bytes:
        return f"{self.shard_id}|{self.digest_key}".encode()


class IntegrityAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One failed check. ``kind`` is bounded (five values): a metric label and a routing key."""

    schema: str = ALERT_SCHEMA
    kind: AlertKind
    shard_id: str
    trail_arn: str
    account_id: str
    region: str
    # The object concerned: the log file for file_hash_mismatch, else the digest itself.
    bucket: str
    key: str
    # The digest that vouched for (or failed to vouch for) the object.
    digest_key: str
    detail: str
    expected: str
    actual: str
    mode: IntegrityMode
    action: Literal["alerted", "dead_lettered"]
    time_ms: int

    def message_key(self) -> bytes:
        return f"{self.kind}|{self.bucket}/{self.key}".encode()


def completeness_event(shard: Shard, digest: Digest, result: Completeness, *, verified: bool) -> CompletenessEvent:
    return CompletenessEvent(
        shard_id=shard.shard_id,
        trail_arn=shard.trail_arn,
        account_id=shard.account_id,
        region=shard.region,
        digest_bucket=digest.digest_s3_bucket,
        digest_key=digest.digest_s3_object,
        hour_start=digest.digest_start_time,
        hour_end=digest.digest_end_time,
        files_expected=result.expected,
        files_collected=result.collected,
        files_missing=len(result.missing),
        missing_keys=result.missing,
        complete=result.complete,
        digest_verified=verified,
        time_ms=_epoch_ms(digest),
    )


def integrity_alert(shard: Shard, digest: Digest, violation: Violation, *, mode: IntegrityMode) -> IntegrityAlert:
    return alert(shard, violation, digest_key=digest.digest_s3_object, time_ms=_epoch_ms(digest), mode=mode)


def alert(shard: Shard, violation: Violation, *, digest_key: str, time_ms: int, mode: IntegrityMode) -> IntegrityAlert:
    """An alert without a parsed digest to stamp it: an unreadable digest, or a file no digest listed."""
    return IntegrityAlert(
        kind=violation.kind,
        shard_id=shard.shard_id,
        trail_arn=shard.trail_arn,
        account_id=shard.account_id,
        region=shard.region,
        bucket=violation.bucket,
        key=violation.key,
        digest_key=digest_key,
        detail=violation.detail,
        expected=violation.expected,
        actual=violation.actual,
        mode=mode,
        action="dead_lettered" if dead_letters(violation.kind, mode) else "alerted",
        time_ms=time_ms,
    )


def encode_completeness(event: CompletenessEvent) -> bytes:
    return _ENCODER.encode(event)


def encode_alert(alert: IntegrityAlert) -> bytes:
    return _ENCODER.encode(alert)


def _epoch_ms(digest: Digest) -> int:
    return int(digest.end.timestamp() * 1000)
