"""Digest verification and reconciliation against digests this test signs itself, exactly as CloudTrail does.

The test plays CloudTrail (:class:`Trail` below): its own RSA key pair, gzip log files, and hourly digests whose
signature goes in the object's metadata, computed independently of ingester.integrity from AWS's documented
recipe (cloudtrail-log-file-custom-validation.md; the AWS CLI's ``Sha256RSADigestValidator``). AWS's documented
digest examples are read from the shared corpus, never copied here.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ingester.demo.digests import DigestWriter
from ingester.integrity import (
    ChainLink,
    CompletenessEvent,
    DigestFile,
    DigestFormatError,
    KeyRing,
    PublicKey,
    chain_id,
    completeness_event,
    digest_prefix,
    encode_completeness,
    entries_by_key,
    is_digest_key,
    load_digest_file,
    log_file_sha256,
    parse_digest,
    reconcile,
    signing_string,
    verify_chain,
    verify_digest,
    verify_log_file,
    verify_log_hash,
    verify_signature,
)
from ingester.integrity.digest import digest_key_time
from ingester.models import Shard

from .corpus import DOCUMENTED_IAM_USER_IDENTITY, INLINE_ENVELOPE, log_file, record_bytes

ACCOUNT, REGION, BUCKET = "111122223333", "us-east-2", "trail-bucket"
TRAIL = "org_trail"  # an underscore on purpose: digest names are read from their fixed-width end
SHARD = Shard(
    trail_arn=f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{TRAIL}",
    bucket=BUCKET,
    key_prefix="",
    org_id="",
    account_id=ACCOUNT,
    region=REGION,
    reader_account=ACCOUNT,
)
FIRST_HOUR = datetime(2024, 5, 1, 10, 1, 31, tzinfo=UTC)
STAMP = "%Y-%m-%dT%H:%M:%SZ"


class Published(msgspec.Struct, frozen=True):
    """A digest object as S3 would return it: gzip body plus user metadata."""

    key: str
    body: bytes
    metadata: dict[str, str]

    def load(self, key: str | None = None) -> DigestFile:
        return load_digest_file(self.body, bucket=BUCKET, key=key or self.key, metadata=self.metadata)


def aws_signature(private: rsa.RSAPrivateKey, body: dict[str, Any], raw: bytes) -> str:
    """AWS's recipe, written out independently of the code under test."""
    previous = body["previousDigestSignature"]
    to_sign = "\n".join(
        [
            body["digestEndTime"],
            f"{body['digestS3Bucket']}/{body['digestS3Object']}",
            hashlib.sha256(raw).hexdigest(),
            "null" if previous is None else previous,
        ]
    )
    return private.sign(to_sign.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()).hex()


class Trail:
    """Plays CloudTrail for one (account, region, trail): log files and a chain of signed hourly digests."""

    def __init__(self, private: rsa.RSAPrivateKey, fingerprint: str) -> None:
        self.private, self.fingerprint = private, fingerprint
        self.logs: dict[str, bytes] = {}  # key -> gzip body, as delivered

    def deliver_logs(self, when: datetime, count: int) -> list[dict[str, Any]]:
        entries = []
        for index in range(count):
            record = dict(INLINE_ENVELOPE, userIdentity=DOCUMENTED_IAM_USER_IDENTITY)
            record["eventID"] = f"{when:%H%M}-{index}"
            body = log_file([record_bytes(record)])
            key = (
                f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{when:%Y/%m/%d}/"
                f"{ACCOUNT}_CloudTrail_{REGION}_{when:%Y%m%dT%H%MZ}_{index:016d}.json.gz"
            )
            self.logs[key] = body
            entries.append(
                {
                    "s3Bucket": BUCKET,
                    "s3Object": key,
                    "hashValue": hashlib.sha256(gzip.decompress(body)).hexdigest(),  # uncompressed, as documented
                    "hashAlgorithm": "SHA-256",
                    "newestEventTime": when.strftime(STAMP),
                    "oldestEventTime": when.strftime(STAMP),
                }
            )
        return entries

    def digest(self, end: datetime, files: list[dict[str, Any]], previous: Published | None, **edits: Any) -> Published:
        key = (
            f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}/{end:%Y/%m/%d}/"
            f"{ACCOUNT}_CloudTrail-Digest_{REGION}_{TRAIL}_{REGION}_{end:%Y%m%dT%H%M%SZ}.json.gz"
        )
        prev_raw = gzip.decompress(previous.body) if previous else None
        body: dict[str, Any] = {
            "awsAccountId": ACCOUNT,
            "digestStartTime": (end - timedelta(hours=1)).strftime(STAMP),
            "digestEndTime": end.strftime(STAMP),
            "digestS3Bucket": BUCKET,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": self.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": files[-1]["newestEventTime"] if files else None,
            "oldestEventTime": files[0]["oldestEventTime"] if files else None,
            "previousDigestS3Bucket": BUCKET if previous else None,
            "previousDigestS3Object": previous.key if previous else None,
            "previousDigestHashValue": hashlib.sha256(prev_raw).hexdigest() if prev_raw else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous.metadata["signature"] if previous else None,
            "logFiles": files,
        }
        body.update(edits)
        raw = json.dumps(body).encode()
        signature = aws_signature(self.private, body, raw)
        metadata = {"signature": signature, "signature-algorithm": "SHA256withRSA"}
        return Published(key=key, body=gzip.compress(raw, mtime=0), metadata=metadata)


class World(NamedTuple):
    private_key: rsa.RSAPrivateKey
    public_key: PublicKey
    trail: Trail
    chain: list[Published]


@functools.cache
def world() -> World:
    """One key pair and three chained hours, built once: 2 files (a starting digest), 3 files, no files."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    # AWS's documented ListPublicKeys examples: Fingerprint == MD5 of the DER Value. ingester never relies on it.
    public = PublicKey(
        fingerprint=hashlib.md5(der).hexdigest(),
        value=der,
        validity_start=FIRST_HOUR - timedelta(days=10),
        validity_end=FIRST_HOUR + timedelta(days=20),
    )
    trail = Trail(private, public.fingerprint)
    first = trail.digest(FIRST_HOUR, trail.deliver_logs(FIRST_HOUR - timedelta(minutes=40), 2), None)
    second_end = FIRST_HOUR + timedelta(hours=1)
    second = trail.digest(second_end, trail.deliver_logs(second_end - timedelta(minutes=30), 3), first)
    third = trail.digest(FIRST_HOUR + timedelta(hours=2), [], second)
    return World(private, public, trail, [first, second, third])


@pytest.fixture
def private_key() -> rsa.RSAPrivateKey:
    return world().private_key


@pytest.fixture
def public_key() -> PublicKey:
    return world().public_key


@pytest.fixture
def trail() -> Trail:
    return world().trail


@pytest.fixture
def chain() -> list[Published]:
    return world().chain


# --- parsing -------------------------------------------------------------------------------------------------


def test_parse_documented_digests(corpus_digests: list[dict[str, Any]]) -> None:
    for documented in corpus_digests:
        raw = json.dumps(documented).encode()
        for data in (raw, gzip.compress(raw)):
            digest = parse_digest(data)
            assert digest.digest_end_time == documented["digestEndTime"]  # kept as the signed string
            assert digest.digest_s3_object == documented["digestS3Object"]
            assert digest.digest_public_key_fingerprint == documented["digestPublicKeyFingerprint"]
            assert digest.previous_digest_signature == documented["previousDigestSignature"]
            assert [entry.s3_object for entry in digest.log_files] == [f["s3Object"] for f in documented["logFiles"]]
            assert [entry.hash_value for entry in digest.log_files] == [f["hashValue"] for f in documented["logFiles"]]
        assert digest_key_time(digest.digest_s3_object) == digest.end
        assert is_digest_key(digest.digest_s3_object)
        assert chain_id(digest.digest_s3_object) == chain_id(digest.previous_digest_s3_object or "")
        result = reconcile(digest, set())
        assert result.expected == len(documented["logFiles"]) and result.missing == sorted(
            f["s3Object"] for f in documented["logFiles"]
        )
    empty = [parse_digest(json.dumps(d).encode()) for d in corpus_digests if not d["logFiles"]]
    assert empty, "AWS documents an 'empty' digest (an hour without log files)"
    assert all(d.newest_event_time is None and reconcile(d, set()).complete for d in empty)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not_gzip"),
        (b"PK\x03\x04", "not_gzip"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt_gzip"),
        (b"{not json", "not_json"),
        (b'{"awsAccountId": "1"}', "not_digest"),
        (b'{"Records": []}', "not_digest"),
    ],
)
def test_parse_rejects_what_is_not_a_digest(data: bytes, reason: str) -> None:
    with pytest.raises(DigestFormatError) as caught:
        parse_digest(data, "k")
    assert caught.value.reason == reason


def test_a_digest_without_log_files_is_malformed_not_empty(chain: list[Published]) -> None:
    body = json.loads(gzip.decompress(chain[1].body))
    del body["logFiles"]
    with pytest.raises(DigestFormatError, match="logFiles"):
        parse_digest(json.dumps(body).encode())


def test_digest_prefix_and_chain_id() -> None:
    org = msgspec.structs.replace(SHARD, key_prefix="pre", org_id="o-abc")
    assert digest_prefix(org) == f"pre/AWSLogs/o-abc/{ACCOUNT}/CloudTrail-Digest/{REGION}/"
    stem = f"{ACCOUNT}_CloudTrail-Digest_{REGION}_{TRAIL}_{REGION}"
    key = f"{digest_prefix(SHARD)}2024/05/01/{stem}_20240501T100131Z.json.gz"
    assert chain_id(key) == f"{digest_prefix(SHARD)}{stem}"
    assert digest_key_time(key) == datetime(2024, 5, 1, 10, 1, 31, tzinfo=UTC)
    assert not is_digest_key(f"{SHARD.log_prefix}2024/05/01/{ACCOUNT}_CloudTrail_{REGION}_20240501T1000Z_a.json.gz")


# --- the signing string ----------------------------------------------------------------------------------------


def test_signing_string_follows_the_documented_format(chain: list[Published]) -> None:
    second = chain[1]
    digest, raw = parse_digest(second.body), gzip.decompress(second.body)
    expected = (
        f"{digest.digest_end_time}\n{BUCKET}/{second.key}\n{hashlib.sha256(raw).hexdigest()}\n"
        f"{chain[0].metadata['signature']}"
    ).encode()
    assert signing_string(digest, BUCKET, second.key, second.body) == expected
    assert signing_string(digest, BUCKET, second.key, raw) == expected  # hashed uncompressed either way


def test_first_digest_has_no_previous_and_signs_null(chain: list[Published], public_key: PublicKey) -> None:
    first = chain[0].load()
    assert first.digest.is_starting and first.digest.previous_digest_signature is None
    assert signing_string(first.digest, BUCKET, first.key, chain[0].body).endswith(b"\nnull")
    assert verify_chain(None, first.digest) is None
    assert verify_digest(first, public_key, None) == []


def test_null_rule_matters(trail: Trail, public_key: PublicKey) -> None:
    """Signed with "" instead of "null" for a starting digest, the signature must not verify."""
    published = trail.digest(FIRST_HOUR, [], None)
    body = json.loads(gzip.decompress(published.body))
    wrong = aws_signature(trail.private, dict(body, previousDigestSignature=""), gzip.decompress(published.body))
    loaded = msgspec.structs.replace(published.load(), signature=wrong)
    violation = verify_signature(loaded, public_key.value)
    assert violation is not None and violation.kind == "digest_signature_invalid"


# --- a valid chain -----------------------------------------------------------------------------------------------


def test_valid_chain_verifies(chain: list[Published], trail: Trail, public_key: PublicKey) -> None:
    ring = KeyRing([public_key])
    previous: ChainLink | None = None
    for published in chain:
        loaded = published.load()
        key = ring.select(loaded.digest.digest_public_key_fingerprint, loaded.digest.start, loaded.digest.end)
        assert verify_digest(loaded, key, previous) == []
        for entry in loaded.digest.log_files:
            body = trail.logs[entry.s3_object]
            assert verify_log_file(entry, body) is None  # the gzip object, inflated before hashing
            assert verify_log_file(entry, gzip.decompress(body)) is None  # the bytes the worker already has
            assert verify_log_hash(entry, log_file_sha256(gzip.decompress(body))) is None
        previous = loaded.link()
    assert len({chain_id(p.key) for p in chain}) == 1


def test_spki_form_of_the_key_verifies_too(chain: list[Published], private_key: rsa.RSAPrivateKey) -> None:
    """AWS documents PKCS#1 DER; its example ListPublicKeys output also has a SubjectPublicKeyInfo key."""
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_signature(chain[1].load(), spki) is None


# --- completeness --------------------------------------------------------------------------------------------------


def test_missing_file_reported_by_reconcile(chain: list[Published]) -> None:
    digest = chain[1].load().digest
    keys = sorted(entries_by_key(digest))
    lost = keys[1]
    result = reconcile(digest, set(keys) - {lost} | {"AWSLogs/other-hour-key.json.gz"})
    assert (result.expected, result.collected, result.missing, result.complete) == (3, 2, [lost], False)
    event = completeness_event(SHARD, digest, result, verified=True)
    decoded = msgspec.json.decode(encode_completeness(event), type=CompletenessEvent)
    assert decoded == event
    assert (decoded.files_expected, decoded.files_collected, decoded.files_missing) == (3, 2, 1)
    assert decoded.missing_keys == [lost] and decoded.schema == "ingester.completeness.v1"
    assert decoded.time_ms == int(digest.end.timestamp() * 1000)
    assert event.message_key() == f"{SHARD.shard_id}|{chain[1].key}".encode()


def test_hour_with_no_files(chain: list[Published], public_key: PublicKey) -> None:
    third, second = chain[2].load(), chain[1].load()
    assert third.digest.log_files == []
    assert verify_digest(third, public_key, second.link()) == []
    result = reconcile(third.digest, set())
    assert (result.expected, result.collected, result.missing, result.complete) == (0, 0, [], True)
    assert json.loads(encode_completeness(completeness_event(SHARD, third.digest, result, verified=True)))["complete"]


def test_the_demo_digest_writer_signs_as_aws_documents() -> None:
    """ingester/demo/digests.py plays CloudTrail for the demo and the integration tests: its signature equals the
    independent recipe above (PKCS#1 v1.5 is deterministic), and its chain verifies."""
    writer = DigestWriter(bucket=BUCKET, org_id="", trail_name=TRAIL, home_region=REGION)
    public = writer.public_key(FIRST_HOUR - timedelta(days=1), FIRST_HOUR + timedelta(days=1))
    logs = Trail(writer.private_key, public.fingerprint)
    files = [
        (e["s3Object"], logs.logs[e["s3Object"]]) for e in logs.deliver_logs(FIRST_HOUR - timedelta(minutes=30), 2)
    ]
    first = writer.digest(ACCOUNT, REGION, FIRST_HOUR, files)
    second = writer.digest(ACCOUNT, REGION, FIRST_HOUR + timedelta(hours=1), [])
    previous = None
    for made in (first, second):
        loaded = load_digest_file(made.body, bucket=BUCKET, key=made.key, metadata=made.metadata)
        raw = gzip.decompress(made.body)
        assert made.metadata["signature"] == aws_signature(writer.private_key, json.loads(raw), raw)
        assert verify_digest(loaded, public, previous) == []
        previous = loaded.link()
    assert [e.s3_object for e in parse_digest(first.body).log_files] == [key for key, _ in files]
