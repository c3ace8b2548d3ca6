"""ingester.codec.decode: whole-file failures get a bounded reason, bad records are rejected one by one."""

from __future__ import annotations

import copy
import gzip
import json
import random
from typing import Any

import msgspec
import pytest

from ingester.codec.cloudtrail import NULL, Record
from ingester.codec.decode import FileDecodeError, decode_object, decode_records, gunzip, split_records
from ingester.errors import DecodeError

from .corpus import DOCUMENTED_IDENTITIES, INLINE_ENVELOPE, log_file, record_bytes

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
