"""ingester.demo.generate: deterministic, realistic CloudTrail log files and their S3 keys."""

from __future__ import annotations

import gzip
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import orjson
import pytest

from ingester.demo.generate import (
    GeneratedFile,
    generate_files,
    generate_records,
    log_file_bytes,
    log_key,
    random_suffix,
)
from ingester.demo.tables import DataFileError, decode_events, decode_vocabulary
from ingester.demo.templates import BUILDERS

ACCOUNT, OTHER, REGION = "111122223333", "444455556666", "eu-west-1"
START = datetime(2024, 11, 10, 16, 0, tzinfo=UTC)
KEY = re.compile(
    r"^AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<acct>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P=acct)_CloudTrail_(?P=region)_(?P<ts>\d{8}T\d{4}Z)_"
    r"(?P<suffix>[A-Za-z0-9]{16})\.json\.gz$"
)
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
IDENTITY_TYPES = {
    "IAMUser",
    "AssumedRole",
    "AWSService",
    "Root",
    "FederatedUser",
    "AWSAccount",
    "IdentityCenterUser",
    "Unknown",
}
# Present in every record; requestParameters/responseElements may be null but the keys are always there.
REQUIRED = {
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "eventID",
    "readOnly",
    "eventType",
    "recipientAccountId",
}


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    return generate_records(7, ACCOUNT, REGION, START, 2_000, span_seconds=3600)


def _files(seed: int = 1, accounts: tuple[str, ...] = (ACCOUNT,), **kwargs: Any) -> list[GeneratedFile]:
    kwargs.setdefault("records_per_file", (0, 20))
    return list(generate_files(seed, accounts, (REGION, "us-east-1"), START, 1, **kwargs))


def _key_minute(key: str) -> datetime:
    match = KEY.match(key)
    assert match is not None, key
    return datetime.strptime(match["ts"], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)


def test_same_seed_same_bytes() -> None:
    first, again = _files(seed=42), _files(seed=42)
    assert first == again
    assert [f.key for f in _files(seed=43)] != [f.key for f in first]
    records = generate_records(3, ACCOUNT, REGION, START, 300)
    assert log_file_bytes(records) == log_file_bytes(generate_records(3, ACCOUNT, REGION, START, 300))
    assert records != generate_records(4, ACCOUNT, REGION, START, 300)


def test_no_global_randomness() -> None:
    random.seed(1)
    first = generate_records(3, ACCOUNT, REGION, START, 200)
    random.seed(2)
    assert generate_records(3, ACCOUNT, REGION, START, 200) == first


def test_a_file_does_not_depend_on_what_else_is_generated() -> None:
    alone = {f.key: f.body for f in _files(accounts=(ACCOUNT,))}
    together = {f.key: f.body for f in _files(accounts=(OTHER, ACCOUNT))}
    assert alone.items() <= together.items()


def test_keys_parse_to_account_region_and_slot_minute_and_sort_in_time_order() -> None:
    files = _files(files_per_hour=12)
    assert len(files) == 2 * 24 * 12
    by_shard: dict[tuple[str, str], list[GeneratedFile]] = {}
    for generated in files:
        match = KEY.match(generated.key)
        assert match is not None, generated.key
        assert match["org"] is None
        by_shard.setdefault((match["acct"], match["region"]), []).append(generated)
    assert set(by_shard) == {(ACCOUNT, REGION), (ACCOUNT, "us-east-1")}
    for shard_files in by_shard.values():
        keys = [f.key for f in shard_files]
        assert keys == sorted(keys)
        minutes = [_key_minute(k) for k in keys]
        assert minutes == [START + timedelta(minutes=5 * i) for i in range(24 * 12)]
        assert all(
            KEY.match(k)["y"] == f"{m:%Y}" and KEY.match(k)["d"] == f"{m:%d}"  # type: ignore[index]
            for k, m in zip(keys, minutes, strict=True)
        )


def test_many_files_per_minute_still_come_in_key_order() -> None:
    keys = [f.key for f in _files(files_per_hour=240, records_per_file=(0, 0))]
    first_shard = keys[: 24 * 240]
    assert first_shard == sorted(first_shard)
    assert Counter(_key_minute(k) for k in first_shard).most_common(1)[0][1] == 4


def test_file_bodies_hold_their_slot_of_records() -> None:
    for generated in _files(files_per_hour=6, records_per_file=(0, 30))[:40]:
        body = orjson.loads(gzip.decompress(generated.body))
        records = body["Records"]
        assert len(records) == generated.record_count
        minute = _key_minute(generated.key)
        times = [datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for r in records]
        assert times == sorted(times)
        assert all(minute <= t < minute + timedelta(minutes=10) for t in times)
        match = KEY.match(generated.key)
        assert match is not None
        assert {(r["recipientAccountId"], r["awsRegion"]) for r in records} <= {(match["acct"], match["region"])}


def test_record_counts_skew_small_within_range() -> None:
    files = generate_files(1, [ACCOUNT], [REGION], START, 1, files_per_hour=6, records_per_file=(1, 200))
    counts = [f.record_count for f in files]
    assert min(counts) >= 1
    assert max(counts) <= 200
    assert sorted(counts)[len(counts) // 2] < 60  # median well below the middle of the range
    assert max(counts) > 120


def test_org_trail_keys() -> None:
    files = list(generate_files(1, [ACCOUNT], [REGION], START, 1, files_per_hour=1, org_id="o-abc123def4"))
    assert all(f.key.startswith(f"AWSLogs/o-abc123def4/{ACCOUNT}/CloudTrail/{REGION}/2024/11/") for f in files)
    assert all(KEY.match(f.key)["org"] == "o-abc123def4" for f in files)  # type: ignore[index]


def test_log_key_and_suffix() -> None:
    suffix = random_suffix(random.Random(5))
    assert re.fullmatch(r"[A-Za-z0-9]{16}", suffix)
    assert suffix == random_suffix(random.Random(5))
    naive = datetime(2024, 2, 29, 23, 59, 30)
    assert log_key(ACCOUNT, REGION, naive, suffix) == (
        f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2024/02/29/{ACCOUNT}_CloudTrail_{REGION}_20240229T2359Z_{suffix}.json.gz"
    )
    paris = datetime(2024, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 2024-02-29T23:30Z
    assert log_key(ACCOUNT, REGION, paris, suffix, org_id="o-x1") == (
        f"AWSLogs/o-x1/{ACCOUNT}/CloudTrail/{REGION}/2024/02/29/{ACCOUNT}_CloudTrail_{REGION}_20240229T2330Z_{suffix}.json.gz"
    )


def test_log_file_bytes_is_gzipped_records() -> None:
    records = generate_records(1, ACCOUNT, REGION, START, 50)
    body = log_file_bytes(records)
    assert body[:2] == b"\x1f\x8b"
    assert orjson.loads(gzip.decompress(body)) == {"Records": records}


def test_every_record_has_the_required_fields(sample: list[dict[str, Any]]) -> None:
    for record in sample:
        assert record.keys() >= REQUIRED, (REQUIRED - record.keys(), record)
        assert TIME.match(record["eventTime"])
        assert UUID.match(record["eventID"])
        assert record["eventSource"].endswith(".amazonaws.com")
        assert record["awsRegion"] == REGION
        assert record["recipientAccountId"] == ACCOUNT
        assert isinstance(record["userIdentity"], dict)
        assert record["eventVersion"] in {"1.05", "1.08", "1.09", "1.10", "1.11"}
        if record["eventVersion"] != "1.05":
            assert record["eventCategory"] == ("Data" if record["managementEvent"] is False else "Management")
    times = [r["eventTime"] for r in sample]
    assert times == sorted(times)
    assert START.strftime("%Y-%m-%dT%H") <= times[0] and times[-1] < "2024-11-10T17:00:00Z"


def test_every_identity_type_appears(sample: list[dict[str, Any]]) -> None:
    identities = [r["userIdentity"] for r in sample]
    assert {i.get("type") for i in identities} >= IDENTITY_TYPES
    roles = [i for i in identities if i.get("type") == "AssumedRole"]
    for role in roles:
        ctx = role["sessionContext"]
        assert ctx["sessionIssuer"]["type"] == "Role"
        assert set(ctx["attributes"]) == {"mfaAuthenticated", "creationDate"}
    assert any("sourceIdentity" in r["sessionContext"] for r in roles)
    assert all("invokedBy" in i for i in identities if i.get("type") == "AWSService")
    assert all("onBehalfOf" in i for i in identities if i.get("type") == "IdentityCenterUser")


def test_realistic_mix(sample: list[dict[str, Any]]) -> None:
    assert len({r["eventSource"] for r in sample}) >= 25
    assert 0.02 < sum("errorCode" in r for r in sample) / len(sample) < 0.09
    assert {r["eventType"] for r in sample} >= {"AwsApiCall", "AwsConsoleSignIn"}
    assert {r["eventCategory"] for r in sample if "eventCategory" in r} == {"Data", "Management"}
    logins = [r for r in sample if r["eventName"] == "ConsoleLogin"]
    assert logins
    assert all(r["eventType"] == "AwsConsoleSignIn" for r in logins)
    shapes = Counter(type(r["requestParameters"]).__name__ for r in sample)
    assert {"dict", "NoneType", "str"} <= shapes.keys()
    for field in (
        "additionalEventData",
        "resources",
        "tlsDetails",
        "sharedEventID",
        "vpcEndpointId",
        "sessionCredentialFromConsole",
    ):
        assert any(field in r for r in sample), field
    assert any(r["sourceIPAddress"].endswith(".amazonaws.com") for r in sample)
    assert {
        "s3.amazonaws.com",
        "ec2.amazonaws.com",
        "iam.amazonaws.com",
        "sts.amazonaws.com",
        "kms.amazonaws.com",
        "lambda.amazonaws.com",
        "dynamodb.amazonaws.com",
    } <= {r["eventSource"] for r in sample}


def test_size_profile() -> None:
    records = generate_records(11, ACCOUNT, REGION, START, 10_000, span_seconds=3600)
    sizes = [len(orjson.dumps(r)) for r in records]
    assert 1_000 <= sum(sizes) / len(sizes) <= 1_700
    large = sum(size >= 10_000 for size in sizes) / len(sizes)
    assert 0.002 <= large <= 0.01
    assert max(sizes) <= 40_000


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_records(1, ACCOUNT, REGION, START, -1)
    with pytest.raises(ValueError):
        generate_records(1, ACCOUNT, REGION, START, 1, span_seconds=0)
    with pytest.raises(ValueError):
        list(generate_files(1, [ACCOUNT], [REGION], START, 1, files_per_hour=0))
    with pytest.raises(ValueError):
        list(generate_files(1, [ACCOUNT], [REGION], START, 1, records_per_file=(5, 1)))


def _shipped(name: str) -> str:
    return resources.files("ingester.demo").joinpath("data", name).read_text()


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("events", 'build = "sts"', 'build = "stss"', r"event #1 \(sts:AssumeRole\): unknown builder 'stss'"),
        ("events", 'who = "oidc"', 'who = "odic"', r"event #3 \(sts:AssumeRoleWithWebIdentity\): who='odic'"),
        ("events", '"@kms_key_resources"', '"@kms_key"', r"event #5 \(kms:Decrypt\): '@kms_key' is not in"),
        ("events", "weight = 85", "wieght = 85", r"Object contains unknown field `wieght` - at `\$.event\[0\]`"),
        ("events", 'build = "sts"', 'build = "sts"\nrequest = {}', r"event #1 .*: an event has a builder or templ"),
        ("vocabulary", '"@boto3",', '"@boto3x",', r"groups.sdk: '@boto3x' is not a group defined above it"),
        ("vocabulary", "Root = 12", "Rot = 12", r"identity_weights.signin: unknown userIdentity types \['Rot'\]"),
    ],
)
def test_a_bad_data_file_fails_naming_the_file_and_entry(file: str, old: str, new: str, message: str) -> None:
    text = _shipped(f"{file}.toml")
    assert old in text
    with pytest.raises(DataFileError, match=rf"^{file}.toml: {message}"):
        if file == "events":
            decode_events(text.replace(old, new, 1), decode_vocabulary(_shipped("vocabulary.toml")), BUILDERS)
        else:
            decode_vocabulary(text.replace(old, new, 1))
