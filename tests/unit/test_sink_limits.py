"""The size rules of the Kafka sink (ingester/sinks/limits.py): what fits a topic, and dead letters cut to fit."""

from __future__ import annotations

import random

import msgspec
import pytest

from ingester.models import DeadLetter, OutboundRecord
from ingester.sinks.limits import _CODECS, BATCH_OVERHEAD_BYTES, fit_dead_letter, fits, record_bytes, usable_bytes

LIMIT = 64 * 1024
MAX_REQUEST = 1024 * 1024
HEADERS = (("account", b"111122223333"), ("region", b"us-east-1"), ("eventName", b"GetObject"))


def record(value: bytes) -> OutboundRecord:
    return OutboundRecord(key=b"111122223333:e1", value=value, timestamp_ms=0, partition_key=b"1", headers=HEADERS)


def noise(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def test_record_bytes_bounds_the_encoded_record() -> None:
    small = record(b"{}")
    assert record_bytes(small) >= len(small.key) + len(small.value) + sum(len(n) + len(v) for n, v in HEADERS)


@pytest.mark.parametrize("compression", ["zstd", "lz4", "gzip", "snappy"])
def test_usable_bytes_leaves_room_for_the_codecs_worst_case(compression: str) -> None:
    room = usable_bytes(LIMIT, compression)
    assert len(_CODECS[compression](noise(room))) + BATCH_OVERHEAD_BYTES <= LIMIT
    assert usable_bytes(LIMIT, "none") == LIMIT


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_a_record_within_the_limit_fits(compression: str) -> None:
    assert fits(record(b"x" * 60_000), LIMIT, compression=compression, max_request_bytes=MAX_REQUEST)


def test_an_incompressible_record_above_the_limit_does_not_fit() -> None:
    big = record(noise(100 * 1024))
    assert not fits(big, LIMIT, compression="zstd", max_request_bytes=MAX_REQUEST)
    assert not fits(big, LIMIT, compression="none", max_request_bytes=MAX_REQUEST)


def test_a_compressible_record_above_the_limit_fits_only_when_compressed() -> None:
    """The broker checks the compressed batch: 100 KiB of JSON that compresses to a few KiB is accepted."""
    json_like = record(b'{"requestParameters": {"blob": "' + b"abc" * 34_000 + b'"}}')
    assert fits(json_like, LIMIT, compression="zstd", max_request_bytes=MAX_REQUEST)
    assert not fits(json_like, LIMIT, compression="none", max_request_bytes=MAX_REQUEST)


def test_the_producers_own_limit_is_checked_uncompressed() -> None:
    """As aiokafka's send() and the Java client do: a 2 MiB record is refused even if it compresses to bytes."""
    huge = record(b"x" * (2 * 1024 * 1024))
    assert not fits(huge, MAX_REQUEST, compression="zstd", max_request_bytes=MAX_REQUEST)


def letter(record_text: str, detail: str = "too large") -> DeadLetter:
    return DeadLetter(
        shard_id="s3://bucket/AWSLogs/111122223333/CloudTrail/us-east-1/",
        bucket="bucket",
        key="AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/file.json.gz",
        reason="record_too_large",
        detail=detail,
        record=record_text,
    )


def test_a_letter_within_the_budget_is_unchanged() -> None:
    small = letter("{}")
    assert fit_dead_letter(small, 4096) == msgspec.json.encode(small)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,
        '"\\' * 50_000,  # each character doubles in JSON
        "\x01" * 50_000,  # each character becomes \u0001: six bytes
        "é€😀" * 20_000,  # two, three and four bytes of UTF-8
    ],
    ids=["ascii", "escaped", "control", "utf8"],
)
def test_a_large_letter_is_cut_to_the_budget_record_first(text: str) -> None:
    budget = 32 * 1024
    value = fit_dead_letter(letter(text), budget)
    decoded = msgspec.json.decode(value, type=DeadLetter)
    assert len(value) <= budget
    assert text.startswith(decoded.record) and decoded.record
    assert decoded.detail == "too large" and decoded.reason == "record_too_large"


def test_the_detail_is_cut_once_the_record_is_gone() -> None:
    value = fit_dead_letter(letter("r" * 5000, detail="d" * 5000), 2048)
    decoded = msgspec.json.decode(value, type=DeadLetter)
    assert len(value) <= 2048
    assert decoded.record == "" and decoded.detail.startswith("ddd")


@pytest.mark.parametrize("compression", ["zstd", "none"])
@pytest.mark.parametrize("body", ["noise", "json"])
def test_the_sinks_admission_agrees_with_fits_at_the_boundary(compression: str, body: str) -> None:
    """KafkaSink settles most records by their size without calling fits (issue 13); around the limit, where the
    shortcut hands over to fits, both must give the same answer for every record, whatever its headers."""
    from ingester.config import KafkaSettings
    from ingester.sinks.kafka import KafkaSink

    settings = KafkaSettings(topic="t", dead_letter_topic="t-dlq", max_request_bytes=LIMIT, compression=compression)  # type: ignore[arg-type]
    sink = KafkaSink(settings)
    room = usable_bytes(LIMIT, compression)
    records = []
    for n, size in enumerate(range(room - 400, LIMIT + 400, 7)):
        value = noise(size) if body == "noise" else b'{"blob": "' + b"abc" * (size // 3) + b'"}'
        headers = (*HEADERS, ("origin", b"s3://bucket/" + b"k" * (n % 5) * 40))  # headers of several sizes
        records.append(
            OutboundRecord(key=b"111122223333:e1", value=value, timestamp_ms=0, partition_key=b"1", headers=headers)
        )
    too_large: list[int] = []
    admitted = sink._admit(records, [("t", 0, list(range(len(records))))], too_large)
    expected = [i for i, r in enumerate(records) if fits(r, LIMIT, compression=compression, max_request_bytes=LIMIT)]
    kept = admitted[0][2] if admitted else []
    assert kept == expected
    assert sorted(too_large) == sorted(set(range(len(records))) - set(expected))
    assert 0 < len(expected) < len(records)  # the range spans the boundary
