"""The raw format decodes only a record's head (codec/cloudtrail.RecordHead), issue 13: the same output as a
whole decode, byte for byte, over every public record and log file; and what the head does not read is sent as
written rather than validated."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from ingester.codec.decode import RecordRejection, decode_object, decode_records, split_records
from ingester.codec.encode import OutputFormat, encode_file
from ingester.codec.routing import Router, RouteTally
from ingester.config import RouteSettings
from ingester.models import OutboundRecord

from .corpus import CORPUS_DIR, log_file, public_lines, record_bytes
from .test_decode import KEY, SHARD

# Routes on every field the head carries for them: source, name, readOnly, category, error, class, classification.
ROUTES = (
    RouteSettings(name="s3-reads", event_source=("s3.amazonaws.com",), read_only=True, topic="s3"),
    RouteSettings(name="sign-ins", classification=("authentication/*",), topic="auth"),
    RouteSettings(name="iam", class_uid=(3001, 3006), topic="iam"),
    RouteSettings(name="errors", error=True, event_category=("Management",), topic="errors"),
    RouteSettings(name="sampled", event_name=("Describe*", "List*"), sample=3, topic="sampled"),
)
PUBLIC_FILES = sorted(path for path in (CORPUS_DIR / "public" / "files").rglob("*") if path.is_file())


def _raw_out(body: bytes, *, head_only: bool) -> tuple[list[OutboundRecord], list[RecordRejection], RouteTally]:
    decoded = decode_object(body, KEY, head_only=head_only)
    rejected = list(decoded.rejected)
    routes = RouteTally(Router(ROUTES))
    out = encode_file(decoded, shard=SHARD, key=KEY, fmt="raw", rejected=rejected, routes=routes)
    return out, rejected, routes


def _same_output(body: bytes) -> int:
    whole, whole_rejected, whole_routes = _raw_out(body, head_only=False)
    head, head_rejected, head_routes = _raw_out(body, head_only=True)
    assert head == whole
    assert (head_routes.sent, head_routes.dropped) == (whole_routes.sent, whole_routes.dropped)
    # The head may accept a record the whole view refuses (a field it does not read has an odd type), never the
    # reverse: whatever it refuses, the whole decode refuses too.
    assert {r.index for r in head_rejected} <= {r.index for r in whole_rejected}
    return len(head)


def test_every_public_record_encodes_the_same_from_its_head() -> None:
    lines = public_lines()
    if not lines:
        pytest.skip("the public corpus is absent")
    assert _same_output(log_file(list(lines))) > 3000


@pytest.mark.parametrize("path", PUBLIC_FILES, ids=lambda path: path.name)
def test_every_public_log_file_encodes_the_same_from_its_head(path: Path) -> None:
    body = path.read_bytes()
    try:
        split_records(body, KEY)
    except Exception:
        pytest.skip("not a log file envelope (covered by test_decode)")
    _same_output(log_file(list(_records_of(body))))


def _records_of(body: bytes) -> list[bytes]:
    return [bytes(raw) for raw in split_records(body, KEY)]


def test_a_field_the_head_does_not_read_is_sent_as_written() -> None:
    record = {
        "eventVersion": "1.08",
        "userIdentity": "not-an-object",  # the whole view refuses this record: record_invalid
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-2",
        "eventID": "0b3d5c8e-1111-2222-3333-444455556666",
        "recipientAccountId": "111122223333",
    }
    raw = record_bytes(record)

    whole = decode_records([msgspec.Raw(raw)])
    head = decode_records([msgspec.Raw(raw)], head_only=True)

    assert [r.reason for r in whole.rejected] == ["record_invalid"]
    assert head.rejected == []
    [out] = encode_file(head, shard=SHARD, key=KEY, fmt="raw")
    assert out.value == raw
    assert out.key == b"111122223333:0b3d5c8e-1111-2222-3333-444455556666"


@pytest.mark.parametrize(
    ("field", "value"),
    [("eventTime", 1714564800), ("eventSource", ["s3"]), ("recipientAccountId", 111122223333), ("readOnly", 7)],
)
def test_a_field_the_head_reads_is_still_validated(field: str, value: object) -> None:
    record = {"eventTime": "2024-05-01T12:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject"}
    record[field] = value
    decoded = decode_records([msgspec.Raw(json.dumps(record).encode())], head_only=True)
    assert [r.reason for r in decoded.rejected] == ["record_invalid"]
    assert field in decoded.rejected[0].detail


@pytest.mark.parametrize("fmt", ["native", "ocsf"])
def test_native_and_ocsf_refuse_a_head_only_decode(fmt: OutputFormat) -> None:
    raw = record_bytes({"eventTime": "2024-05-01T12:00:00Z", "eventName": "GetObject"})
    decoded = decode_records([msgspec.Raw(raw)], head_only=True)
    with pytest.raises(ValueError, match="head-only"):
        encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt, rejected=[])
