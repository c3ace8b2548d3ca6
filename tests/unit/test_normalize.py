"""ingester.codec.normalize and ingester.codec.encode: record -> event -> sink-ready record."""

from __future__ import annotations

import calendar
import copy
import hashlib
import json
import random
import time
from datetime import datetime
from typing import Any, Literal

import msgspec
import pytest

from ingester.codec.cloudtrail import Record, UserIdentity
from ingester.codec.decode import DecodedFile, RecordRejection, decode_object
from ingester.codec.encode import encode_file
from ingester.codec.normalize import SCHEMA, Event, Origin, actor_of, epoch_ms, event_id, parse_epoch_ms, to_event
from ingester.models import Shard

from .corpus import (
    DOCUMENTED_ASSUMED_ROLE_IDENTITY,
    DOCUMENTED_AWS_SERVICE_IDENTITY,
    INLINE_ENVELOPE,
    log_file,
    record_bytes,
)

SHARD = Shard(
    trail_arn="arn:aws:cloudtrail:us-west-2:444455556666:trail/org-trail",
    bucket="org-audit-logs",
    key_prefix="",
    org_id="o-exampleorgid",
    account_id="444455556666",
    region="us-west-2",
    reader_account="999988887777",
)
KEY = (
    "AWSLogs/o-exampleorgid/444455556666/CloudTrail/us-west-2/2024/03/10/"
    "444455556666_CloudTrail_us-west-2_20240310T1405Z_9nYN7gp2eWAJHIfT.json.gz"
)
ORIGIN = Origin(bucket=SHARD.bucket, key=KEY)


def _decode_one(record: dict[str, Any]) -> tuple[msgspec.Raw, Record]:
    decoded = decode_object(log_file([record_bytes(record)]), KEY)
    assert decoded.rejected == []
    [pair] = decoded.records
    return pair


def _event(record: dict[str, Any], *, account_id: str = SHARD.account_id, region: str = SHARD.region) -> Event:
    raw, typed = _decode_one(record)
    return to_event(typed, raw, account_id=account_id, region=region, origin=ORIGIN)


def _expected_ms(event_time: str) -> int:
    return calendar.timegm(time.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ")) * 1000


def _with_identity(base: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(base)
    record["userIdentity"] = copy.deepcopy(identity)
    return record


def test_each_corpus_record_becomes_a_matching_event(corpus_record: tuple[str, dict[str, Any]]) -> None:
    _, record = corpus_record

    event = _event(record)

    account = record.get("recipientAccountId") or SHARD.account_id
    identity = record.get("userIdentity", {})
    assert event.event_source == record.get("eventSource", "")
    assert event.event_name == record.get("eventName", "")
    assert event.account_id == account
    assert event.region == record.get("awsRegion") or SHARD.region
    assert event.outcome == _expected_outcome(record)
    assert event.error_code == record.get("errorCode", "")
    assert event.error_message == record.get("errorMessage", "")
    assert event.time == record["eventTime"]
    assert event.time_ms == _expected_ms(record["eventTime"])
    assert event.event_type == record.get("eventType", "")
    assert event.source_ip == record.get("sourceIPAddress", "")
    assert event.user_agent == record.get("userAgent", "")
    assert event.request_id == record.get("requestID", "")
    assert event.shared_event_id == record.get("sharedEventID", "")
    assert event.read_only == record.get("readOnly")
    assert event.actor.type == identity.get("type", "")
    assert event.actor.arn == identity.get("arn", "")
    assert event.actor.account_id == identity.get("accountId", "")
    assert event.actor.principal_id == identity.get("principalId", "")
    assert event.actor.invoked_by == identity.get("invokedBy", "")
    assert event.origin == ORIGIN
    assert event.schema == SCHEMA
    if "eventID" in record:
        assert event.id == f"{account}:{record['eventID']}"
    for field, name in (
        ("request_parameters", "requestParameters"),
        ("response_elements", "responseElements"),
        ("additional_event_data", "additionalEventData"),
        ("resources", "resources"),
    ):
        assert json.loads(bytes(getattr(event, field))) == record.get(name)


def _expected_outcome(record: dict[str, Any]) -> str:
    if record.get("eventType") == "AwsCloudTrailInsight":
        return "other"
    results = [
        part.get(record.get("eventName"))
        for part in (record.get("responseElements"), record.get("serviceEventDetails"))
        if isinstance(part, dict)
    ]
    failed = record.get("errorCode") or record.get("errorMessage") or "Failure" in results
    return "failure" if failed else "success"


def test_corpus_has_a_failed_call_and_it_is_a_failure(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    failed = [record for _, record in corpus_records if record.get("errorCode")]
    assert failed, "the corpus should hold at least one record with errorCode"

    for record in failed:
        event = _event(record)
        assert event.outcome == "failure"
        assert event.error_code == record["errorCode"]


def test_shard_account_and_region_fill_in_when_the_record_lacks_them(
    corpus_records: list[tuple[str, dict[str, Any]]],
) -> None:
    record = copy.deepcopy(corpus_records[0][1])
    record.pop("recipientAccountId", None)
    record.pop("awsRegion", None)

    event = _event(record, account_id="777788889999", region="ap-south-1")

    assert event.account_id == "777788889999"
    assert event.region == "ap-south-1"
    assert event.id == f"777788889999:{record['eventID']}"


def _assumed_role_records(corpus_records: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    from_corpus = [
        record for _, record in corpus_records if record.get("userIdentity", {}).get("type") == "AssumedRole"
    ]
    return from_corpus or [_with_identity(INLINE_ENVELOPE, DOCUMENTED_ASSUMED_ROLE_IDENTITY)]


def test_assumed_role_actor_names_the_role_and_the_session() -> None:
    event = _event(_with_identity(INLINE_ENVELOPE, DOCUMENTED_ASSUMED_ROLE_IDENTITY))

    actor = event.actor
    assert actor.type == "AssumedRole"
    assert actor.arn == "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed/MySessionName"
    assert actor.session_issuer_arn == "arn:aws:iam::123456789012:role/RoleToBeAssumed"
    assert actor.session_issuer_type == "Role"
    assert actor.session_issuer_name == "RoleToBeAssumed"
    assert actor.name == actor.session_name == "MySessionName"  # as OCSF's actor.user.name
    assert actor.session_created == "20131102T010628Z"
    assert actor.mfa_authenticated is False
    assert actor.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert actor.account_id == "123456789012"


def test_assumed_role_records_of_the_corpus_or_docs(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    for record in _assumed_role_records(corpus_records):
        identity = record["userIdentity"]
        issuer = identity["sessionContext"]["sessionIssuer"]

        actor = _event(record).actor

        assert actor.session_issuer_arn == issuer["arn"]
        assert actor.session_issuer_name == issuer["userName"]
        assert actor.session_name == identity["arn"].split("/")[2]
        assert actor.name == actor.session_name != ""


def test_assumed_role_session_name_from_principal_id_when_the_arn_has_none() -> None:
    identity = copy.deepcopy(DOCUMENTED_ASSUMED_ROLE_IDENTITY)
    identity["arn"] = "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed"

    actor = actor_of(msgspec.convert(identity, UserIdentity))

    assert actor.name == actor.session_name == "AssumedRoleSessionName"
    assert actor.session_issuer_name == "RoleToBeAssumed"


def test_aws_service_actor_is_the_invoking_service(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    service_events = [record for _, record in corpus_records if record.get("eventType") == "AwsServiceEvent"]
    assert service_events, "the corpus should hold AwsServiceEvent records"
    base = service_events[0]

    actor = _event(_with_identity(base, DOCUMENTED_AWS_SERVICE_IDENTITY)).actor

    assert actor.type == "AWSService"
    assert actor.invoked_by == actor.name == "ebs.amazonaws.com"  # as OCSF's actor.user.name
    assert actor.session_name == ""
    for record in service_events:
        assert _event(record).actor.invoked_by == record["userIdentity"]["invokedBy"] == "AWS Internal"


def test_root_actor_is_named_root(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    roots = [record for _, record in corpus_records if record.get("userIdentity", {}).get("type") == "Root"]
    assert roots, "the corpus should hold Root records"

    for record in roots:
        actor = _event(record).actor
        assert actor.type == "Root"
        assert actor.name == (record["userIdentity"].get("userName") or "root")
        assert actor.name == "root"
        assert actor.arn == "arn:aws:iam::111122223333:root"


def test_root_with_an_account_alias_keeps_the_alias(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    root = next(record for _, record in corpus_records if record.get("userIdentity", {}).get("type") == "Root")
    identity = {**root["userIdentity"], "userName": "my-company-prod"}

    assert _event(_with_identity(root, identity)).actor.name == "my-company-prod"


def test_iam_user_actor_is_the_user(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    users = [record for _, record in corpus_records if record.get("userIdentity", {}).get("type") == "IAMUser"]
    assert users

    for record in users:
        assert _event(record).actor.name == record["userIdentity"]["userName"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("false", False), (True, True), (False, False), ("maybe", None)],
)
def test_mfa_authenticated(value: object, expected: bool | None) -> None:
    identity = copy.deepcopy(DOCUMENTED_ASSUMED_ROLE_IDENTITY)
    identity["sessionContext"]["attributes"]["mfaAuthenticated"] = value

    assert _event(_with_identity(INLINE_ENVELOPE, identity)).actor.mfa_authenticated is expected


def test_mfa_from_a_corpus_session(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    with_session = [
        record
        for _, record in corpus_records
        if "attributes" in record.get("userIdentity", {}).get("sessionContext", {})
    ]
    assert with_session

    for record in with_session:
        assert _event(record).actor.mfa_authenticated is False  # all documented as "false"
        flipped = copy.deepcopy(record)
        flipped["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] = "true"
        assert _event(flipped).actor.mfa_authenticated is True


def test_no_session_means_mfa_unknown(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    record = corpus_records[0][1]
    assert "sessionContext" not in record["userIdentity"]

    assert _event(record).actor.mfa_authenticated is None


def test_event_ids_are_deterministic(corpus_record: tuple[str, dict[str, Any]]) -> None:
    _, record = corpus_record

    assert _event(record).id == _event(copy.deepcopy(record)).id


def test_same_event_id_in_two_accounts_gives_two_ids(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    # The corpus documents "234f004b-EXAMPLE" in two accounts (a KMS and a CloudTrail service event).
    by_event_id: dict[str, set[str]] = {}
    for _, record in corpus_records:
        if "eventID" in record and "recipientAccountId" in record:
            by_event_id.setdefault(record["eventID"], set()).add(record["recipientAccountId"])
    shared = {eid: accounts for eid, accounts in by_event_id.items() if len(accounts) > 1}
    assert shared, "the corpus should reuse one eventID across accounts"

    for eid, accounts in shared.items():
        records = [r for _, r in corpus_records if r.get("eventID") == eid]
        ids = {_event(r).id for r in records}
        assert ids == {f"{account}:{eid}" for account in accounts}
        assert len(ids) == len(accounts)


def test_same_record_read_from_two_account_shards_gets_two_ids(
    corpus_records: list[tuple[str, dict[str, Any]]],
) -> None:
    record = corpus_records[0][1]
    assert "recipientAccountId" not in record

    first = _event(record, account_id="111111111111").id
    second = _event(record, account_id="222222222222").id

    assert first != second
    assert first.endswith(":" + record["eventID"])


def test_record_without_event_id_gets_a_stable_content_hash(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    without = [record for _, record in corpus_records if "eventID" not in record]
    assert without, "the corpus should hold records without eventID"

    ids = set()
    for record in without:
        raw, typed = _decode_one(record)
        expected = "sha256:" + hashlib.sha256(record_bytes(record)).hexdigest()[:32]

        assert event_id(typed, "111111111111", raw) == expected
        assert event_id(typed, "222222222222", raw) == expected
        assert _event(record).id == expected
        ids.add(expected)
    assert len(ids) == len(without)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-11-10T16:24:34Z", 1668097474000),
        ("1970-01-01T00:00:00Z", 0),
        ("2024-02-29T23:59:59.123Z", 1709251199123),
        ("", 0),
        ("not a time", 0),
    ],
)
def test_epoch_ms(text: str, expected: int) -> None:
    assert epoch_ms(text) == expected


def test_epoch_ms_fast_path_agrees_with_fromisoformat() -> None:
    """The shortcut for CloudTrail's shape must accept and reject exactly what ``fromisoformat`` does."""
    rng = random.Random(5)
    texts = [
        "2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T23:59:60Z", "2024-01-01T23:60:00Z",
        "1969-12-31T23:59:59Z", "2024-01-01 00:00:07Z", "2024-01-01T00:00:0\uff15Z", "2024-01-01T00:00:+5Z",
        "2024-01-01T00:00: 5Z", "2024-01-01T0a:00:00Z", "20131102T010628Z", "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z", "2024-01-01T00:00:00+01:00", "x" * 20,
    ] + [
        f"{rng.randint(1, 9999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}T"
        f"{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}:{rng.randint(0, 61):02d}Z"
        for _ in range(3000)
    ]  # fmt: skip

    def reference(text: str) -> int:
        try:
            return int(datetime.fromisoformat(text).timestamp() * 1000)
        except ValueError:
            return 0

    assert [
        text for text in texts if epoch_ms(text) != reference(text) or parse_epoch_ms(text) != reference(text)
    ] == []


def test_management_event_flag_fills_the_category() -> None:
    event = _event(INLINE_ENVELOPE | {"userIdentity": DOCUMENTED_AWS_SERVICE_IDENTITY})

    assert event.event_category == "Management"
    assert event.read_only is True


def _decoded_corpus(corpus_records: list[tuple[str, dict[str, Any]]]) -> tuple[DecodedFile, list[bytes]]:
    raws = [record_bytes(record) for _, record in corpus_records]
    decoded = decode_object(log_file(raws), KEY)
    assert decoded.rejected == []
    return decoded, raws


def test_encode_raw_yields_the_original_record_bytes(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    decoded, raws = _decoded_corpus(corpus_records)

    out = encode_file(decoded, shard=SHARD, key=KEY, fmt="raw")

    assert [record.value for record in out] == raws
    for outbound, (_, record) in zip(out, corpus_records, strict=True):
        owner = record.get("recipientAccountId") or SHARD.account_id
        assert outbound.partition_key == owner.encode()
        assert outbound.timestamp_ms == _expected_ms(record["eventTime"])
        if "eventID" in record:
            assert outbound.key == f"{owner}:{record['eventID']}".encode()
        else:
            assert outbound.key.startswith(b"sha256:")


def test_encode_raw_and_native_agree_on_keys(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    decoded, _ = _decoded_corpus(corpus_records)

    raw_out = encode_file(decoded, shard=SHARD, key=KEY, fmt="raw")
    native_out = encode_file(decoded, shard=SHARD, key=KEY, fmt="native")

    assert [(r.key, r.partition_key, r.timestamp_ms) for r in raw_out] == [
        (r.key, r.partition_key, r.timestamp_ms) for r in native_out
    ]


def test_encode_native_yields_events_with_the_original_free_form_values(
    corpus_records: list[tuple[str, dict[str, Any]]],
) -> None:
    decoded, _ = _decoded_corpus(corpus_records)

    out = encode_file(decoded, shard=SHARD, key=KEY, fmt="native")

    assert len(out) == len(corpus_records)
    for outbound, (_, record) in zip(out, corpus_records, strict=True):
        value = json.loads(outbound.value)
        account = record.get("recipientAccountId") or SHARD.account_id
        assert value["account_id"] == account
        assert value["event_name"] == record.get("eventName", "")
        assert value["origin"] == {"bucket": SHARD.bucket, "key": KEY}
        assert value.get("request_parameters") == record.get("requestParameters")
        assert value.get("response_elements") == record.get("responseElements")
        assert value.get("additional_event_data") == record.get("additionalEventData")
        assert value.get("resources") == record.get("resources")
        assert outbound.key == value["id"].encode()
        assert outbound.partition_key == account.encode()
        assert outbound.timestamp_ms == value["time_ms"] == _expected_ms(record["eventTime"])
        assert msgspec.json.decode(outbound.value, type=Event).id == value["id"]


def test_encode_native_keeps_request_parameters_bytes(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    """Raw passthrough: the exact bytes CloudTrail wrote (spacing, number spelling) appear in the event."""
    record = copy.deepcopy(corpus_records[0][1])
    record.pop("requestParameters", None)
    text = record_bytes(record)[:-2] + b',\n  "requestParameters": {"limit" : 1.50, "names": [ "a" ]}\n}'
    decoded = decode_object(log_file([text]), KEY)

    [outbound] = encode_file(decoded, shard=SHARD, key=KEY, fmt="native")

    assert b'"request_parameters":{"limit" : 1.50, "names": [ "a" ]}' in outbound.value


def test_encode_native_names_its_schema(corpus_records: list[tuple[str, dict[str, Any]]]) -> None:
    decoded, _ = _decoded_corpus(corpus_records)

    out = encode_file(decoded, shard=SHARD, key=KEY, fmt="native")

    assert [json.loads(record.value).get("schema") for record in out] == [SCHEMA] * len(out)


@pytest.mark.parametrize("event_time", [None, "", "yesterday", "2024-13-45T00:00:00Z"])
@pytest.mark.parametrize("fmt", ["ocsf", "native", "raw"])
def test_a_record_without_a_usable_event_time_is_dead_lettered_not_sent_at_1970(
    event_time: str | None, fmt: Literal["ocsf", "native", "raw"]
) -> None:
    timeless = copy.deepcopy(INLINE_ENVELOPE)
    if event_time is None:
        del timeless["eventTime"]
    else:
        timeless["eventTime"] = event_time
    decoded = decode_object(log_file([record_bytes(INLINE_ENVELOPE), record_bytes(timeless)]), KEY)
    rejected: list[RecordRejection] = []

    out = encode_file(decoded, shard=SHARD, key=KEY, fmt=fmt, rejected=rejected)

    assert [outbound.timestamp_ms for outbound in out] == [epoch_ms(INLINE_ENVELOPE["eventTime"])]
    assert [(rejection.index, rejection.reason) for rejection in rejected] == [(1, "no_event_time")]
    assert rejected[0].raw == record_bytes(timeless)
