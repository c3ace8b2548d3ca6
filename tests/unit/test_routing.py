"""The [[routes]] table: matching, first match wins, drop and deterministic sampling, the cache, and the encoder
leaving dropped records out without disturbing the indices of rejected ones."""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import pytest

from ingester import config
from ingester.codec import routing
from ingester.codec.cloudtrail import Record
from ingester.codec.decode import RecordRejection, decode_object
from ingester.codec.encode import OutputFormat, encode_file
from ingester.codec.routing import Router, RouteTally
from ingester.errors import ConfigError

from .corpus import INLINE_ENVELOPE, log_file, record_bytes
from .test_decode import KEY, SHARD

FORMATS: tuple[OutputFormat, ...] = ("raw", "native", "ocsf")


def record(**fields: Any) -> Record:
    return msgspec.json.decode(msgspec.json.encode({**INLINE_ENVELOPE, **fields}), type=Record)


def router(*routes: dict[str, Any]) -> Router:
    return Router(config.build({"routes": list(routes)}).routes)


def route_name(r: Router, rec: Record, *, account: str = "111122223333", region: str = "us-east-1") -> str:
    return r.names[r.route(rec, account, region, 6003)]


@pytest.mark.parametrize(
    ("condition", "matching", "other"),
    [
        ({"event_source": ["s3.*"]}, {"eventSource": "s3.amazonaws.com"}, {"eventSource": "ec2.amazonaws.com"}),
        ({"event_name": ["Get*", "List*"]}, {"eventName": "ListBuckets"}, {"eventName": "PutObject"}),
        ({"event_name": ["Decrypt"]}, {"eventName": "Decrypt"}, {"eventName": "decrypt"}),  # case-sensitive
        ({"read_only": True}, {"readOnly": "true"}, {"readOnly": False}),  # CloudTrail's string flags too
        ({"read_only": False}, {"readOnly": False}, {}),  # absent readOnly is neither true nor false
        ({"error": True}, {"errorCode": "AccessDenied"}, {}),
        ({"error": False}, {}, {"errorCode": "AccessDenied"}),
        ({"event_category": ["Data"]}, {"eventCategory": "Data"}, {"eventCategory": "Management"}),
        ({"region": ["eu-*"]}, {"awsRegion": "eu-west-1"}, {"awsRegion": "us-east-1"}),
        (
            {"classification": ["authentication/*"]},
            {"eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin"},
            {"eventSource": "s3.amazonaws.com", "eventName": "GetObject"},
        ),
    ],
)
def test_a_condition_matches_what_it_names_and_nothing_else(
    condition: dict[str, Any], matching: dict[str, Any], other: dict[str, Any]
) -> None:
    r = router({"name": "r", "topic": "t", **condition})

    assert route_name(r, record(**matching)) == "r"
    assert route_name(r, record(**other)) == routing.DEFAULT_ROUTE


def test_all_conditions_of_a_route_must_hold_and_the_first_matching_route_wins() -> None:
    r = router(
        {"name": "s3-writes", "event_source": ["s3.amazonaws.com"], "read_only": False, "topic": "writes"},
        {"name": "s3", "event_source": ["s3.amazonaws.com"], "topic": "s3"},
        {"name": "account", "account": ["4444*"], "topic": "acct"},
    )

    assert route_name(r, record(eventSource="s3.amazonaws.com", readOnly=False)) == "s3-writes"
    assert route_name(r, record(eventSource="s3.amazonaws.com", readOnly=True)) == "s3"
    assert route_name(r, record(eventSource="ec2.amazonaws.com"), account="444455556666") == "account"
    assert route_name(r, record(eventSource="ec2.amazonaws.com"), account="111122223333") == "default"
    assert r.topics == ("writes", "s3", "acct", "")


def test_the_class_uid_condition_uses_the_class_the_encoder_gives() -> None:
    r = router({"name": "auth", "class_uid": [3002], "topic": "auth"})
    rec = record()

    assert r.names[r.route(rec, "1", "us-east-1", 3002)] == "auth"
    assert r.names[r.route(rec, "1", "us-east-1", 6003)] == "default"


def test_drop_and_sampling_are_deterministic_on_the_event_key() -> None:
    r = router({"name": "drop", "event_name": ["Decrypt"], "action": "drop"}, {"name": "half", "sample": 2})
    tally = RouteTally(r)
    keys = [f"111122223333:{n}".encode() for n in range(1000)]

    kept = [key for key in keys if tally.decide(record(eventName="GetObject"), "1", "r", 6003, key) >= 0]

    assert kept == [key for key in keys if zlib.crc32(key) % 2 == 0]
    assert 400 < len(kept) < 600
    assert tally.decide(record(eventName="Decrypt"), "1", "r", 6003, keys[0]) == -1
    assert tally.counts() == [("drop", 0, 1), ("half", 0, 1000 - len(kept))]  # sent: counted by the encoder


def test_the_route_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "CACHE_ENTRIES", 10)
    r = router({"name": "a", "account": ["1*"], "topic": "t"})

    names = {route_name(r, record(), account=f"{n % 2 + 1}{n:011d}") for n in range(100)}

    assert names == {"a", "default"}
    assert len(r.cache) <= 10


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([{"name": "a", "topic": "t"}, {"name": "a", "topic": "u"}], "names must be unique"),
        ([{"name": "a", "action": "drop", "topic": "t"}], "drops its records"),
        ([{"name": "a", "action": "drop", "sample": 3}], "drops its records"),
        ([{"name": "default", "topic": "t"}], "'default'"),
        ([{"name": "a", "topic": "cloudtrail-dead-letter"}], "a topic ingester uses"),
        ([{"name": ""}], "routes"),
        ([{"name": "a", "sample": 0}], "routes"),
        ([{"name": "a", "event_category": ["Datas"]}], "allowed"),
    ],
)
def test_bad_routes_are_configuration_errors(routes: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.build({"routes": routes})


def test_routed_topics_are_the_send_routes_named_topics_once() -> None:
    settings = config.build(
        {
            "routes": [
                {"name": "a", "topic": "x"},
                {"name": "b", "action": "drop"},
                {"name": "c"},
                {"name": "d", "topic": "x"},
                {"name": "e", "topic": "y"},
            ]
        }
    )

    assert settings.routed_topics() == ("x", "y")


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_encoder_leaves_dropped_records_out_and_keeps_rejection_indices(fmt: OutputFormat) -> None:
    """File: [kept, dropped, kept, unencodable, kept]: the unencodable record is still index 3 of its file."""
    raws = [
        record_bytes({**INLINE_ENVELOPE, "eventID": f"e{n}", "eventName": "Decrypt" if n == 1 else "GetObject"})
        for n in range(5)
    ]
    decoded = decode_object(log_file(raws), KEY)
    broken = msgspec.structs.replace(decoded.records[3][1], event_time=None)  # fails to encode in every format
    decoded.records[3] = (decoded.records[3][0], broken)
    tally = RouteTally(router({"name": "no-decrypt", "event_name": ["Decrypt"], "action": "drop"}))
    rejected: list[RecordRejection] = []

    out = encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt, rejected=rejected, routes=tally)

    assert [o.key.decode().rsplit(":", 1)[-1] for o in out] == ["e0", "e2", "e4"]
    assert {o.topic for o in out} == {""}
    assert [(r.index, r.reason) for r in rejected] == [(3, "record_unencodable")]
    assert tally.counts() == [("no-decrypt", 0, 1), ("default", 3, 0)]


def test_without_routes_every_record_goes_to_the_default_topic() -> None:
    decoded = decode_object(log_file([record_bytes({**INLINE_ENVELOPE, "eventID": "x"})]), KEY)

    out = encode_file(decoded, shard=SHARD, key=KEY, fmt="ocsf")

    assert [o.topic for o in out] == [""]
