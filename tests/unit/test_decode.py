"""ingester.codec.decode: whole-file failures get a bounded reason, bad records are rejected one by one."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ingester.codec.cloudtrail import NULL, Record
from ingester.codec.decode import (
    UTF8_BOM,
    DecodedFile,
    FileDecodeError,
    RecordRejection,
    decode_object,
    decode_records,
    gunzip,
    is_utf8,
    split_records,
)
from ingester.codec.encode import OutputFormat, RecordEncodeError, encode_file
from ingester.codec.salvage import split_leniently
from ingester.errors import DecodeError
from ingester.models import Shard

from .corpus import CORPUS_DIR, DOCUMENTED_IDENTITIES, INLINE_ENVELOPE, log_file, missing_reason, record_bytes

KEY = (
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/17/"
    "111122223333_CloudTrail_us-east-2_20150817T1445Z_9nYN7gp2eWAJHIfT.json.gz"
)


def _reason(body: bytes) -> FileDecodeError:
    with pytest.raises(FileDecodeError) as caught:
        decode_object(body, KEY)
    error = caught.value
    assert isinstance(error, DecodeError)
    assert error.key == KEY
    assert KEY in str(error)
    assert error.retriable is False
    return error


def test_every_corpus_record_decodes_without_rejection(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    raws = [record_bytes(record) for _, record in corpus_records]
    body = log_file(raws)

    decoded = decode_object(body, KEY)

    assert decoded.rejected == []
    assert len(decoded.records) == len(corpus_records)
    assert decoded.decompressed_bytes == len(gzip.decompress(body))
    for (raw, record), original, (_, source) in zip(decoded.records, raws, corpus_records, strict=True):
        assert bytes(raw) == original
        assert isinstance(record, Record)
        assert record.event_id == source.get("eventID", "")
        assert record.event_time == source["eventTime"]
        assert record.event_name == source.get("eventName", "")
        assert record.aws_region == source.get("awsRegion", "")
        assert record.recipient_account_id == source.get("recipientAccountId", "")
        assert record.user_identity.type == source.get("userIdentity", {}).get("type", "")


def test_each_corpus_record_decodes_alone(corpus_record: tuple[str, dict[str, Any]]) -> None:
    _, record = corpus_record

    decoded = decode_object(log_file([record_bytes(record)]), KEY)

    assert decoded.rejected == []
    [(raw, typed)] = decoded.records
    assert json.loads(bytes(raw)) == record
    assert typed.event_source == record.get("eventSource", "")
    assert typed.error_code == record.get("errorCode", "")
    for field, name in (
        ("request_parameters", "requestParameters"),
        ("response_elements", "responseElements"),
        ("additional_event_data", "additionalEventData"),
        ("resources", "resources"),
    ):
        assert json.loads(bytes(getattr(typed, field))) == record.get(name)


def test_zero_byte_object() -> None:
    assert _reason(b"").reason == "empty_object"


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_not_gzip(seed: int) -> None:
    rng = random.Random(seed)
    body = b"\x00" + rng.randbytes(rng.randrange(1, 4096))

    assert _reason(body).reason == "not_gzip"


def test_text_that_is_not_json_nor_gzip() -> None:
    assert _reason(b"<?xml version='1.0'?><Error/>").reason == "not_gzip"


def _sample_gzip() -> bytes:
    records = [
        json.dumps({"eventID": f"id-{index}", "eventTime": "2015-08-17T14:45:00Z", "eventName": "ListBuckets"}).encode()
        for index in range(200)
    ]
    return log_file(records)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_gzip(fraction: float) -> None:
    body = _sample_gzip()

    assert _reason(body[: int(len(body) * fraction)]).reason == "truncated_gzip"


def test_gzip_missing_its_trailer() -> None:
    body = _sample_gzip()

    assert _reason(body[:-8]).reason == "truncated_gzip"
    assert _reason(body[:-1]).reason == "truncated_gzip"


@pytest.mark.parametrize("seed", range(10))
def test_corrupted_gzip_body(seed: int) -> None:
    rng = random.Random(seed)
    body = bytearray(_sample_gzip())
    middle = len(body) // 2
    for index in range(middle - 8, middle + 8):
        body[index] ^= rng.randrange(1, 256)

    assert _reason(bytes(body)).reason in {"corrupt_gzip", "truncated_gzip"}


def test_gzip_with_bad_crc() -> None:
    body = bytearray(_sample_gzip())
    body[-8] ^= 0xFF  # first byte of the CRC32 trailer

    assert _reason(bytes(body)).reason == "corrupt_gzip"


def test_gzip_of_text_that_is_not_json() -> None:
    assert _reason(gzip.compress(b"not json")).reason == "not_json"


def test_gzip_of_json_cut_short() -> None:
    assert _reason(gzip.compress(b'{"Records": [{"eventID": "x"')).reason == "not_json"


@pytest.mark.parametrize(
    "payload",
    [b'{"foo": 1}', b'{"Records": null}', b'{"Records": {"eventID": "x"}}', b"[1, 2, 3]", b'"Records"'],
)
def test_gzip_of_json_that_is_not_a_cloudtrail_file(payload: bytes) -> None:
    error = _reason(gzip.compress(payload))

    assert error.reason == "not_cloudtrail"


def test_gzip_of_a_digest_file_is_not_cloudtrail(corpus_digests: list[dict[str, Any]]) -> None:
    for digest in corpus_digests:
        error = _reason(gzip.compress(json.dumps(digest).encode()))

        assert error.reason == "not_cloudtrail"
        assert "Records" in error.detail


@pytest.mark.parametrize("payload", [b"", b"   \n\t "])
def test_gzip_of_nothing_is_an_empty_file(payload: bytes) -> None:
    assert _reason(gzip.compress(payload)).reason == "empty_file"


def test_empty_records_array_is_a_valid_empty_file() -> None:
    decoded = decode_object(gzip.compress(b'{"Records": []}'), KEY)

    assert decoded.records == []
    assert decoded.rejected == []


def test_uncompressed_log_file_is_accepted(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    raws = [record_bytes(record) for _, record in corpus_records[:5]]
    body = b"\n  " + log_file(raws, compress=False)

    decoded = decode_object(body, KEY)

    assert decoded.rejected == []
    assert [bytes(raw) for raw, _ in decoded.records] == raws
    assert decoded.decompressed_bytes == len(body)


def test_gunzip_passes_uncompressed_json_through() -> None:
    body = b'{"Records": []}'

    assert gunzip(body, KEY) is body


def test_split_records_gives_slices_of_the_input() -> None:
    data = b'{"Records":[ {"a": 1} ,{"b":[2, 3]}, null ]}'

    raws = split_records(data, KEY)

    assert [bytes(raw) for raw in raws] == [b'{"a": 1}', b'{"b":[2, 3]}', b"null"]


def test_record_with_invalid_user_identity_is_rejected_alone(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    records = [copy.deepcopy(record) for _, record in corpus_records[:4]]
    records[2]["userIdentity"] = "arn:aws:iam::111122223333:user/anaya"
    raws = [record_bytes(record) for record in records]

    decoded = decode_object(log_file(raws), KEY)

    assert len(decoded.rejected) == 1
    rejection = decoded.rejected[0]
    assert rejection.index == 2
    assert rejection.reason == "record_invalid"
    assert "$.userIdentity" in rejection.detail
    assert rejection.raw == raws[2]
    assert [bytes(raw) for raw, _ in decoded.records] == [raws[0], raws[1], raws[3]]
    assert [record.event_id for _, record in decoded.records] == [
        records[index].get("eventID", "") for index in (0, 1, 3)
    ]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"eventTime": 17}', "at `$.eventTime`"),
        (
            b'{"userIdentity": {"sessionContext": {"attributes": {"mfaAuthenticated": 1}}}}',
            "at `$.userIdentity.sessionContext.attributes.mfaAuthenticated`",
        ),
        (b'{"readOnly": [true]}', "at `$.readOnly`"),
        # At the root msgspec names no path, only the mismatch.
        (b'"just a string"', "Expected `object`, got `str`"),
        (b"42", "Expected `object`, got `int`"),
    ],
)
def test_invalid_records_are_rejected_with_the_reason(raw: bytes, needle: str) -> None:
    decoded = decode_records([msgspec.Raw(raw), msgspec.Raw(b'{"eventID": "ok"}')])

    assert [(rejection.index, rejection.raw) for rejection in decoded.rejected] == [(0, raw)]
    assert needle in decoded.rejected[0].detail
    assert [record.event_id for _, record in decoded.records] == ["ok"]


@pytest.mark.parametrize(
    "value",
    [
        b'{"bucketName": "amzn-s3-demo-bucket",   "key" : "a/b.txt", "nested": {"x": [1, 2.50, null]}}',
        b'"arn:aws:cloudtrail:us-east-2:123456789012:trail/My-First-Trail"',
        b"null",
        b"[ ]",
        b'"\\u00e9t\\u00e9 \\"quoted\\""',
    ],
    ids=["object", "string", "null", "array", "escaped-string"],
)
def test_request_parameters_round_trip_byte_for_byte(value: bytes) -> None:
    raw = b'{"eventID": "e1", "requestParameters": ' + value + b', "responseElements":' + value + b"}"

    [(_, record)] = decode_object(gzip.compress(b'{"Records": [' + raw + b"]}"), KEY).records

    assert bytes(record.request_parameters) == value
    assert bytes(record.response_elements) == value


def test_missing_free_form_fields_default_to_json_null() -> None:
    [(_, record)] = decode_object(gzip.compress(b'{"Records": [{"eventID": "e1"}]}'), KEY).records

    assert record.request_parameters == NULL
    assert bytes(record.request_parameters) == b"null"
    assert bytes(record.resources) == b"null"
    assert record.user_identity.type == ""


def test_unknown_future_fields_do_not_break_decoding(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    record = copy.deepcopy(corpus_records[0][1])
    record["eventVersion"] = "9.99"
    record["someFutureField"] = {"deeply": [{"nested": True}], "n": 1e300}
    record["anotherNewScalar"] = "x"
    record["userIdentity"]["brandNewIdentityField"] = ["a", "b"]
    record["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"}
    original = record_bytes(record)

    decoded = decode_object(log_file([original]), KEY)

    assert decoded.rejected == []
    [(raw, typed)] = decoded.records
    assert bytes(raw) == original  # the unknown fields survive in the raw record
    assert typed.event_version == "9.99"
    assert typed.event_id == record["eventID"]
    assert typed.user_identity.user_name == record["userIdentity"]["userName"]


def test_record_of_256_kib_decodes() -> None:
    big = {"policy": "x" * (256 * 1024), "statements": [{"sid": f"s{index}"} for index in range(1000)]}
    raw = json.dumps({"eventID": "big", "eventName": "PutBucketPolicy", "requestParameters": big}).encode()
    assert len(raw) > 256 * 1024

    decoded = decode_object(log_file([raw]), KEY)

    assert decoded.rejected == []
    [(got_raw, record)] = decoded.records
    assert bytes(got_raw) == raw
    assert record.event_id == "big"
    assert json.loads(bytes(record.request_parameters)) == big


def test_many_records_keep_their_order() -> None:
    raws = [json.dumps({"eventID": f"id-{index:05d}"}).encode() for index in range(5000)]

    decoded = decode_object(log_file(raws), KEY)

    assert [record.event_id for _, record in decoded.records] == [f"id-{index:05d}" for index in range(5000)]


@pytest.mark.parametrize("kind", sorted(DOCUMENTED_IDENTITIES))
def test_documented_identity_shapes_decode(kind: str) -> None:
    identity = DOCUMENTED_IDENTITIES[kind]
    raw = record_bytes({**INLINE_ENVELOPE, "userIdentity": identity})

    decoded = decode_object(log_file([raw]), KEY)

    assert decoded.rejected == []
    [(_, record)] = decoded.records
    assert record.user_identity.type == identity["type"]
    assert record.user_identity.principal_id == identity.get("principalId", "")
    assert record.user_identity.user_name == identity.get("userName", "")
    assert record.user_identity.identity_provider == identity.get("identityProvider", "")
    assert record.user_identity.invoked_by == identity.get("invokedBy", "")


# ---------------------------------------------------------------------------------------------- hostile records
# One bad record among real ones: nothing but FileDecodeError escapes decode_object, nothing escapes encode_file,
# the bad record is rejected alone (or, when it is valid JSON, delivered), every good record survives in every
# output format.

SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-east-2:111122223333:trail/management-events",
    bucket="amzn-s3-demo-bucket",
    key_prefix="",
    org_id="",
    account_id="111122223333",
    region="us-east-2",
    reader_account="111122223333",
)
FORMATS: tuple[OutputFormat, ...] = ("raw", "native", "ocsf")
BAD_AT = 2


def _appended(raw: bytes, member: bytes) -> bytes:
    """``raw`` (a JSON object) with ``member`` ("name": value) added last: it wins over an earlier duplicate."""
    return raw.rstrip()[:-1].rstrip() + b",\n  " + member + b"\n}"


def _deep(levels: int, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * levels + closer * levels


def _with_bad(records: list[tuple[str, dict[str, Any]]], bad: bytes) -> tuple[bytes, list[bytes]]:
    """A log file of the first five corpus records with record BAD_AT replaced by ``bad``, and the good ones."""
    raws = [record_bytes(record) for _, record in records[:5]]
    good = raws[:BAD_AT] + raws[BAD_AT + 1 :]
    return log_file([*good[:BAD_AT], bad, *good[BAD_AT:]]), good


def _json(value: bytes) -> Any:
    """Strict UTF-8, then JSON; with room for the records nested near the recursion limit that are delivered."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 2000)
    try:
        return json.loads(value.decode("utf-8"))
    finally:
        sys.setrecursionlimit(limit)


def assert_delivered(decoded: DecodedFile, expected: list[bytes]) -> None:
    """Every format delivers exactly ``expected`` (in order), as valid UTF-8 JSON, with the same keys."""
    keys = None
    for fmt in FORMATS:
        rejected: list[RecordRejection] = []
        out = encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt, rejected=rejected)
        assert rejected == []
        assert len(out) == len(expected)
        values = [_json(outbound.value) for outbound in out]
        if fmt == "raw":
            assert [outbound.value for outbound in out] == expected
        if fmt == "ocsf":
            assert [value["raw_data"].encode() for value in values] == expected
        shape = [(outbound.key, outbound.partition_key, outbound.timestamp_ms) for outbound in out]
        assert keys is None or shape == keys
        keys = shape


def _rejected_alone(body: bytes, good: list[bytes], bad: bytes, reason: str) -> RecordRejection:
    decoded = decode_object(body, KEY)

    assert [(rejection.index, rejection.reason) for rejection in decoded.rejected] == [(BAD_AT, reason)]
    assert decoded.rejected[0].raw == bad
    assert [bytes(raw) for raw, _ in decoded.records] == good
    assert_delivered(decoded, good)
    return decoded.rejected[0]


_NOT_UTF8 = {
    "in-event-name": b'"eventName": "Get\xffObject"',
    "in-request-parameters": b'"requestParameters": {"key": "caf\xc3("}',
    "in-an-unknown-field": b'"futureField": "\xed\xa0\x80"',  # an encoded surrogate (CESU-8): not UTF-8
    "cut-short-sequence": b'"userAgent": "aws-cli \xe2\x82"',
    "overlong-encoding": b'"errorMessage": "\xc0\xaf"',
}


@pytest.mark.parametrize("member", list(_NOT_UTF8.values()), ids=list(_NOT_UTF8))
def test_record_with_invalid_utf8_is_rejected_alone(
    corpus_records: list[tuple[str, dict[str, Any]]], member: bytes
) -> None:
    bad = _appended(record_bytes(corpus_records[BAD_AT][1]), member)
    body, good = _with_bad(corpus_records, bad)

    rejection = _rejected_alone(body, good, bad, "invalid_utf8")

    assert "can't decode byte" in rejection.detail


_NOT_DECODABLE = {
    "lone-high-surrogate": b'"eventName": "\\ud800"',
    "lone-low-surrogate-in-request-parameters": b'"requestParameters": {"k": "\\udc00x"}',
    "surrogates-reversed": b'"userAgent": "\\udc00\\ud800"',
    "lone-surrogate-in-an-unknown-field": b'"futureField": ["\\ud83d"]',
    "nul-byte-in-a-string": b'"userAgent": "a\x00b"',
    "control-character-in-a-string": b'"errorMessage": "line\x1fbreak"',
    "1000-deep-arrays-in-request-parameters": b'"requestParameters": ' + _deep(1000),
    "1000-deep-objects-in-an-unknown-field": b'"futureField": ' + _deep(1000, opener=b'{"a":', closer=b"}"),
    "100000-deep-arrays": b'"responseElements": ' + _deep(100_000),
    "huge-number-as-event-time": b'"eventTime": 1e400',
    "huge-integer-as-read-only": b'"readOnly": ' + str(2**70).encode(),
}


@pytest.mark.parametrize("member", list(_NOT_DECODABLE.values()), ids=list(_NOT_DECODABLE))
def test_record_that_does_not_decode_is_rejected_alone(
    corpus_records: list[tuple[str, dict[str, Any]]], member: bytes
) -> None:
    bad = _appended(record_bytes(corpus_records[BAD_AT][1]), member)
    body, good = _with_bad(corpus_records, bad)

    rejection = _rejected_alone(body, good, bad, "record_invalid")

    if b"[[[" in member or b'{"a":{"a":' in member:
        assert rejection.detail.startswith("RecursionError: ")


@pytest.mark.parametrize(
    "bad", [b"3", b'"x"', b"null", b"true", b"[]", b"[{}]", b"-0.0e-7", b'"\\ud800"'], ids=lambda bad: bad.decode()
)
def test_record_that_is_not_an_object_is_rejected_alone(
    corpus_records: list[tuple[str, dict[str, Any]]], bad: bytes
) -> None:
    body, good = _with_bad(corpus_records, bad)

    rejection = _rejected_alone(body, good, bad, "record_invalid")

    assert rejection.detail  # msgspec's words; for "\ud800" at a string's end: "Input data was truncated"


_VALID_BUT_ODD = {
    "1e400-in-request-parameters": b'"requestParameters": {"size": 1e400, "min": -1e400}',
    "huge-integers-in-an-unknown-field": b'"futureField": [%d, -%d, %s]' % (2**70, 2**70, b"9" * 400),
    "duplicate-key": b'"eventName": "DuplicateWins"',
    "escaped-nul": b'"userAgent": "a\\u0000b"',
    "surrogate-pair": b'"userAgent": "\\ud83d\\ude00 \xf0\x9f\x98\x80"',
    "deep-but-within-the-limit": b'"requestParameters": ' + _deep(100),
}


@pytest.mark.parametrize("member", list(_VALID_BUT_ODD.values()), ids=list(_VALID_BUT_ODD))
def test_odd_but_valid_record_is_delivered(corpus_records: list[tuple[str, dict[str, Any]]], member: bytes) -> None:
    odd = _appended(record_bytes(corpus_records[BAD_AT][1]), member)
    body, good = _with_bad(corpus_records, odd)
    expected = [*good[:BAD_AT], odd, *good[BAD_AT:]]

    decoded = decode_object(body, KEY)

    assert decoded.rejected == []
    assert [bytes(raw) for raw, _ in decoded.records] == expected
    assert_delivered(decoded, expected)
    if member.startswith(b'"eventName"'):
        assert decoded.records[BAD_AT][1].event_name == "DuplicateWins"  # the last of duplicate keys, as msgspec
    if member.startswith(b'"userAgent": "a'):
        assert decoded.records[BAD_AT][1].user_agent == "a\x00b"


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "uncompressed"])
def test_byte_order_mark_at_the_start_is_ignored(
    corpus_records: list[tuple[str, dict[str, Any]]], compress: bool
) -> None:
    raws = [record_bytes(record) for _, record in corpus_records]
    text = UTF8_BOM + log_file(raws, compress=False)
    body = gzip.compress(text) if compress else text

    decoded = decode_object(body, KEY, sha256=True)

    assert decoded.rejected == []
    assert decoded.decompressed_bytes == len(text)
    assert decoded.sha256 == hashlib.sha256(text).hexdigest()  # of the bytes as stored, BOM included
    assert_delivered(decoded, raws)


def test_records_nested_around_the_recursion_limit() -> None:
    """An IAM CreateUser record, so the OCSF mapping decodes its requestParameters again (one frame deeper than
    the record decode): at every depth around the limit, the record is delivered or rejected, nothing raises."""
    good = [record_bytes({**INLINE_ENVELOPE, "eventID": f"good-{index}"}) for index in range(3)]
    outcomes = set()
    for depth in range(sys.getrecursionlimit() - 200, sys.getrecursionlimit() + 10):
        nested = b'{"userName": ' + _deep(depth) + b"}"
        deep = _appended(record_bytes({**INLINE_ENVELOPE, "eventSource": "iam.amazonaws.com"}), b'"x": 1')
        deep = _appended(deep, b'"eventName": "CreateUser", "requestParameters": ' + nested)

        decoded = decode_object(log_file([good[0], deep, *good[1:]]), KEY)

        delivered = [bytes(raw) for raw, _ in decoded.records]
        assert delivered in (good, [good[0], deep, *good[1:]])
        assert_delivered(decoded, delivered)
        outcomes.add(len(delivered))
    assert outcomes == {3, 4}  # the sweep crossed the limit


def test_encode_failure_of_one_record_is_rejected_with_its_index(
    corpus_records: list[tuple[str, dict[str, Any]]],
) -> None:
    """The decoder never builds such a record (its eventTime is not a str), so it stands in for any bug or
    unforeseen shape in a mapping: one dead letter, the file's other records delivered."""
    raws = [record_bytes(record) for _, record in corpus_records[:6]]
    decoded = decode_object(log_file([raws[0], b"3", *raws[1:]]), KEY)  # index 1 already rejected by the decode
    broken = msgspec.structs.replace(decoded.records[3][1], event_time=None)
    decoded.records[3] = (decoded.records[3][0], broken)  # file index 4
    others = msgspec.structs.replace(decoded, records=decoded.records[:3] + decoded.records[4:])
    for fmt in FORMATS:
        expected = encode_file(others, shard=SHARD, key=KEY, fmt=fmt)
        rejected: list[RecordRejection] = []

        out = encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt, rejected=rejected)

        assert [(rejection.index, rejection.reason) for rejection in rejected] == [(4, "record_unencodable")]
        assert rejected[0].raw == raws[3]
        assert rejected[0].detail.startswith("TypeError: ")
        assert [outbound.key for outbound in out] == [outbound.key for outbound in expected]
        with pytest.raises(RecordEncodeError, match="record 4: TypeError"):
            encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt)


def test_hundred_thousand_tiny_records_in_bounded_time() -> None:
    tiny = [b'{"eventTime":"2024-01-01T00:00:00Z"}'] * 100_000  # the least a record needs to be sent
    began = time.perf_counter()

    decoded = decode_object(log_file(tiny), KEY)
    for fmt in FORMATS:
        assert len(encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt, rejected=[])) == 100_000
    salvaged = decode_object(log_file([*tiny, b'"\\ud800"']), KEY)  # msgspec refuses it: the salvage cuts it

    assert len(decoded.records) == len(salvaged.records) == 100_000
    assert [(rejection.index, rejection.reason) for rejection in salvaged.rejected] == [(100_000, "record_invalid")]
    assert time.perf_counter() - began < 60  # ~3 s idle, ~15 s on this busy 2-core machine: a bound, not a benchmark


# ------------------------------------------------------------------------------------------------ whole file


@pytest.mark.parametrize(
    "text",
    [
        b'{"Records": [{"eventID": "a"}, {"eventName": "\\ud800"',  # cut short after a record msgspec refuses
        b'{"Records": [], "x": ' + b"[" * 100_000,  # RecursionError, then no end
        b'{"x": ' + _deep(100_000) + b"}",  # RecursionError, and no Records
        b'{"Records": [{}]} trailing',
        b'{"Records": [{}]}{"Records": [{}]}',
        b'{"Records": [{"a": "unterminated}]}',
        b'{"Records": [{}]}}',
        b"\x00" + b'{"Records": [{"a": "\\ud800"}]}',
    ],
    ids=["cut-short", "deep-and-cut-short", "deep-without-records", "trailing", "two", "unterminated", "extra", "nul"],
)
def test_envelope_failures_are_file_decode_errors(text: bytes) -> None:
    error = _reason(gzip.compress(text))

    assert error.reason == "not_json"
    assert error.detail


def test_split_records_maps_recursion_error_to_a_file_decode_error() -> None:
    with pytest.raises(FileDecodeError) as caught:
        split_records(b'{"Records": ' + b"[" * 100_000, KEY)

    assert caught.value.reason == "not_json"
    assert caught.value.detail.startswith("RecursionError: ")


def test_bad_value_outside_records_does_not_cost_the_file(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    raws = [record_bytes(record) for _, record in corpus_records]
    body = b'{"note": "\\ud800", "deep": ' + _deep(5000) + b', "Records": [' + b",".join(raws) + b"]}"

    decoded = decode_object(gzip.compress(body), KEY)

    assert decoded.rejected == []
    assert_delivered(decoded, raws)


def _corpus_files() -> list[Path]:
    return sorted((CORPUS_DIR / "public" / "files").rglob("*.json"))


def test_salvage_cuts_every_corpus_file_as_msgspec_does() -> None:
    """Real log files, which msgspec reads: the lenient splitter yields exactly msgspec's slices, so a file that
    needs it delivers its good records byte for byte as the fast path would."""
    files = _corpus_files()
    if not files:
        pytest.skip(missing_reason(CORPUS_DIR / "public" / "files"))
    for path in files:
        data = path.read_bytes()
        expected = [bytes(raw) for raw in split_records(data, path.name)]

        salvaged = split_leniently(data)

        assert salvaged is not None, path
        assert [bytes(raw) for raw in salvaged] == expected, path


def test_salvage_matches_msgspec_on_shapes() -> None:
    data = b' {"a": "Records", "Records" : [ 1 , {"b": [1, 2]}, "x\\",y", [] ], "z": {"Records": [5]}}\n'

    salvaged = split_leniently(data)

    assert salvaged is not None
    assert [bytes(raw) for raw in salvaged] == [bytes(raw) for raw in split_records(data, KEY)]
    assert split_leniently(b'{"Records": [1], "Records": [2, 3]}') == [msgspec.Raw(b"2"), msgspec.Raw(b"3")]
    assert split_leniently(b'{"Records": []}') == []
    assert split_leniently(b'{"Records": [,]}') == [msgspec.Raw(b""), msgspec.Raw(b"")]
    assert split_leniently(b'{"Other": [1]}') is None
    assert split_leniently(b"[1]") is None


def test_is_utf8() -> None:
    assert is_utf8(b"plain ascii")
    assert is_utf8("café 😀".encode() * 300_000)  # more than one chunk, sequences cut at chunk boundaries
    assert not is_utf8(b"caf\xc3")
    assert not is_utf8("é".encode() * 600_000 + b"\xff")
