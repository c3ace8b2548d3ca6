"""Decoded records -> sink-ready :class:`~ingester.models.OutboundRecord` in the configured output format.

The seam where output schemas plug in: ``native`` (ingester.cloudtrail.v1, see normalize.py) and ``raw`` (the
original CloudTrail record, byte for byte). The Kafka key is the event's deterministic id (consumers can
compact or dedup on it); ``partition_key`` is the account, so one account's events stay in one partition, in
order.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ingester.codec.decode import DecodedFile
from ingester.codec.normalize import Origin, epoch_ms, event_id, to_event
from ingester.models import OutboundRecord, Shard

OutputFormat = Literal["native", "raw"]

_ENCODER = msgspec.json.Encoder()


def encode_file(decoded: DecodedFile, *, shard: Shard, key: str, fmt: OutputFormat) -> list[OutboundRecord]:
    """One pass over the file's records; no per-record logging or metrics (the caller counts per object)."""
    origin = Origin(bucket=shard.bucket, key=key)
    account, region = shard.account_id, shard.region
    out: list[OutboundRecord] = []
    append = out.append
    if fmt == "raw":
        for raw, record in decoded.records:
            owner = record.recipient_account_id or account
            append(
                OutboundRecord(
                    event_id(record, owner, raw).encode(),
                    bytes(raw),
                    epoch_ms(record.event_time),
                    owner.encode(),
                )
            )
        return out
    encode = _ENCODER.encode
    for raw, record in decoded.records:
        event = to_event(record, raw, account_id=account, region=region, origin=origin)
        append(OutboundRecord(event.id.encode(), encode(event), event.time_ms, event.account_id.encode()))
    return out
