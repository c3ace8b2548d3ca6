"""Decoded records -> sink-ready :class:`~ingester.models.OutboundRecord` in the configured output format.

The seam where output schemas plug in: ``ocsf`` (OCSF 1.5.0, see ocsf.py; the default), ``native``
(ingester.cloudtrail.v1, see normalize.py) and ``raw`` (the original CloudTrail record, byte for byte). Every
format yields the same key, timestamp and partition key for a record, so consumers can switch formats without
re-keying: the Kafka key is the event's deterministic id (consumers can compact or dedup on it);
``partition_key`` is the account, so one account's events stay in one partition, in order.

A record that fails to encode is left out and reported as a :class:`~ingester.codec.decode.RecordRejection`
(``record_unencodable``), never raised: the mappings are Python over hostile data, and a bug or an unforeseen
shape in one record must cost one dead letter, not the file (nor, raised, a pipeline that stops on the same file
at every start).

A record without a usable eventTime (absent, or not a time) is dead-lettered as ``no_event_time`` in every
format rather than sent at time 0: the event's time is the Kafka timestamp, and a 1970 timestamp is deleted by
the topic's time-based retention minutes after it is written (README, "timestamp and retention") and falls
outside every time-bounded search a SIEM runs. The dead letter keeps the record whole, counted by its reason.
CloudTrail writes eventTime in every record, so one without it did not come from CloudTrail as it is.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import msgspec

from ingester.codec.classification import classify_record, ocsf_kind
from ingester.codec.cloudtrail import RecordHead
from ingester.codec.decode import DecodedFile, RecordRejection, describe, full_records
from ingester.codec.normalize import Origin, epoch_ms, event_id, to_event
from ingester.codec.ocsf import to_ocsf
from ingester.codec.routing import RouteTally
from ingester.errors import DecodeError
from ingester.models import OutboundRecord, Shard

OutputFormat = Literal["ocsf", "native", "raw"]

_ENCODER = msgspec.json.Encoder()
# Events are encoded into one buffer per file, then copied out: msgspec's ``encode`` grows a fresh buffer by
# reallocation for every event, which cost more than the copy for native events (their encode -15%, and the
# classification spliced in without two concatenations); for OCSF events it measured neutral.
_BUFFER_BYTES = 16 * 1024
_CLASSIFICATION_KEY = b',"classification":'
_CLASS_BYTES = {uid: str(uid).encode() for uid in (6003, 3002, 3001, 3006)}


Headers = tuple[tuple[str, bytes], ...]


def headers(record: RecordHead, account: str, region: str, class_uid: int) -> Headers:
    """The routing headers every format carries; class is the record's OCSF class uid (6003, 3002, 3001, 3006)."""
    return _headers(account, record.aws_region or region, record.event_source, record.event_name, class_uid)


@lru_cache(maxsize=16_384)  # ~1 KB per entry; distinct (account, region, API) combinations in flight
def _headers(account: str, region: str, event_source: str, event_name: str, class_uid: int) -> Headers:
    """One shared tuple per distinct combination: cheaper than building five per record, and lighter to hold."""
    return (
        ("account", account.encode()),
        ("region", region.encode()),
        ("eventSource", event_source.encode()),
        ("eventName", event_name.encode()),
        ("class", _CLASS_BYTES.get(class_uid) or str(class_uid).encode()),
    )


class NoEventTime(ValueError):
    """The record has no eventTime, or one that is not a time: its dead letter's reason is ``no_event_time``."""

    reason = "no_event_time"


def _no_event_time(record: RecordHead) -> NoEventTime:
    text = record.event_time
    return NoEventTime(f"eventTime {text[:64]!r} is not a time" if text else "no eventTime")


class RecordEncodeError(DecodeError):
    """A record could not be encoded, and the caller of :func:`encode_file` gave no ``rejected`` list."""


def encode_file(
    decoded: DecodedFile[RecordHead],
    *,
    shard: Shard,
    key: str,
    fmt: OutputFormat,
    rejected: list[RecordRejection] | None = None,
    routes: RouteTally | None = None,
    provenance: Headers = (),
    raw_data: bool = True,
) -> list[OutboundRecord]:
    """One pass over the file's records; no per-record logging or metrics (the caller counts per object).

    ``provenance`` (codec/provenance.py: the file's origin, record count and the shard's watermark) is appended
    to every record's routing headers: one tuple concatenation per record, and nothing when it is empty.

    A record whose encoding raises is left out of the result and appended to ``rejected`` (``record_unencodable``
    or ``no_event_time``, with its index in the file), after the file's other records are encoded. Without
    ``rejected`` that raises :class:`RecordEncodeError` instead, so a record is never dropped silently. The try
    around each record costs nothing until one fails (CPython 3.11 zero-cost exceptions), and a failure's position
    is ``len(out) + len(failed)``, so the loops count nothing.

    With ``routes`` (the ``[[routes]]`` table), each record gets its route's topic, or is left out when its route
    drops it (counted in ``routes``, not rejected: a dropped record is delivered by design). ``raw_data`` (OCSF
    only, ``sink.ocsf_raw_data``): whether events carry the original record."""
    account, region = shard.account_id, shard.region
    out: list[OutboundRecord] = []
    failed: list[tuple[int, Exception]] = []  # (position in decoded.records, error)
    append = out.append
    # Without routes every record takes route 0, the default topic (""): no branch per record.
    decide = routes.decide if routes is not None else None
    topics, sent = (routes.topics, routes.sent) if routes is not None else (("",), [0])
    dropped = 0  # records left out by their route: positions in decoded.records count them too
    if fmt == "raw":
        for raw, record in decoded.records:
            try:
                timestamp = epoch_ms(record.event_time)
                if not timestamp:
                    raise _no_event_time(record)
                recipient = record.recipient_account_id or account
                class_uid = ocsf_kind(record)[0]
                key_bytes = event_id(record, recipient, raw).encode()
                route = 0 if decide is None else decide(record, recipient, region, class_uid, key_bytes)
                if route < 0:
                    dropped += 1
                    continue
                extra = headers(record, recipient, region, class_uid)
                if provenance:
                    extra += provenance
                value = bytes(raw)
                append(OutboundRecord(key_bytes, value, timestamp, recipient.encode(), extra, topics[route]))
                sent[route] += 1
            except MemoryError:
                raise
            except Exception as exc:  # any error of one record is that record's (module docstring)
                failed.append((len(out) + len(failed) + dropped, exc))
    elif fmt == "ocsf":
        encode_into, buffer = _ENCODER.encode_into, bytearray(_BUFFER_BYTES)
        log_name = f"s3://{shard.bucket}/{key}"
        for raw, record in full_records(decoded):
            try:
                owner = record.recipient_account_id or account
                key_bytes = event_id(record, owner, raw).encode()
                ocsf = to_ocsf(record, raw, account_id=account, region=region, log_name=log_name, raw_data=raw_data)
                if not ocsf.time:
                    raise _no_event_time(record)
                route = 0 if decide is None else decide(record, owner, region, ocsf.class_uid, key_bytes)
                if route < 0:
                    dropped += 1
                    continue
                extra = headers(record, owner, region, ocsf.class_uid)
                if provenance:
                    extra += provenance
                encode_into(ocsf, buffer)
                value = bytes(buffer)
                append(OutboundRecord(key_bytes, value, ocsf.time, owner.encode(), extra, topics[route]))
                sent[route] += 1
            except MemoryError:
                raise
            except Exception as exc:
                failed.append((len(out) + len(failed) + dropped, exc))
    else:
        encode_into, buffer = _ENCODER.encode_into, bytearray(_BUFFER_BYTES)
        origin = Origin(bucket=shard.bucket, key=key)
        for raw, record in full_records(decoded):
            try:
                event = to_event(record, raw, account_id=account, region=region, origin=origin)
                if not event.time_ms:
                    raise _no_event_time(record)
                class_uid = ocsf_kind(record)[0]
                key_bytes = event.id.encode()
                route = 0 if decide is None else decide(record, event.account_id, region, class_uid, key_bytes)
                if route < 0:
                    dropped += 1
                    continue
                # The native event gains the classification as its last member: msgspec writes a Struct as one
                # JSON object, so splicing before its closing brace is exact and cheaper than a second Struct.
                encode_into(event, buffer)
                buffer[-1:] = _CLASSIFICATION_KEY
                encode_into(classify_record(record), buffer, -1)
                buffer += b"}"
                value = bytes(buffer)
                extra = headers(record, event.account_id, region, class_uid)
                if provenance:
                    extra += provenance
                append(OutboundRecord(key_bytes, value, event.time_ms, event.account_id.encode(), extra, topics[route]))
                sent[route] += 1
            except MemoryError:
                raise
            except Exception as exc:
                failed.append((len(out) + len(failed) + dropped, exc))
    if failed:
        rejections = _rejections(decoded, failed)
        if rejected is None:
            first = rejections[0]
            raise RecordEncodeError(f"{key}: record {first.index}: {first.detail}") from failed[0][1]
        rejected.extend(rejections)
    return out


def _rejections(decoded: DecodedFile[RecordHead], failed: list[tuple[int, Exception]]) -> list[RecordRejection]:
    """Positions in ``decoded.records`` -> indices in the file: the records are the file's minus the rejected
    ones, in order, so the n-th record's index is n plus the rejected indices at or below it."""
    skipped = sorted(rejection.index for rejection in decoded.rejected)
    result = []
    for position, exc in failed:
        index = position
        for skipped_index in skipped:
            if skipped_index > index:
                break
            index += 1
        raw = bytes(decoded.records[position][0])
        reason = exc.reason if isinstance(exc, NoEventTime) else "record_unencodable"
        result.append(RecordRejection(index, reason, describe(exc), raw))
    return result
