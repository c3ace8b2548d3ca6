"""CloudTrail digest files: wire Structs, parsing, and the pure key arithmetic of where digests live.

A digest is CloudTrail's signed, hourly statement of which log files it delivered for one (account, region,
trail) and what their SHA-256 was. Its structure is AWS's "CloudTrail digest file structure" page
(awsdocs/aws-cloudtrail-user-guide, cloudtrail-log-file-validation-digest-file-structure.md). The times are kept
as the exact strings of the file, never re-rendered: ``digestEndTime`` is signed byte for byte, and a datetime
round trip could change it (fractional seconds, ``+00:00`` for ``Z``).

Pure and synchronous: bytes in, Structs out. Fetching is the pipeline's job.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec
from msgspec import field

from ingester.errors import DecodeError
from ingester.models import Shard

GZIP_MAGIC = b"\x1f\x8b"
SHA256 = "SHA-256"  # the only hash algorithm CloudTrail documents for log files and digests
SHA256_WITH_RSA = "SHA256withRSA"  # the only signature algorithm CloudTrail documents

# The S3 user metadata that carries a digest's signature; boto returns user metadata without the prefix.
SIGNATURE_METADATA = "signature"
SIGNATURE_ALGORITHM_METADATA = "signature-algorithm"
_AMZ_META = "x-amz-meta-"

# <account>_CloudTrail-Digest_<region>_<trail>_<home region>_<YYYYMMDDTHHMMSSZ>.json.gz; the trail name may hold
# underscores, so the name is read from its fixed-width end, as the AWS CLI does (key[-24:-8]).
_DIGEST_SUFFIX = ".json.gz"
_STAMP_WIDTH = len("20150817T150131Z")
_DIGEST_MARK = "_CloudTrail-Digest_"


class LogFileEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One log file a digest vouches for; ``hash_value`` is hex SHA-256 of the *uncompressed* log file."""

    s3_bucket: str = field(name="s3Bucket")
    s3_object: str = field(name="s3Object")
    hash_value: str = field(name="hashValue")
    hash_algorithm: str = field(name="hashAlgorithm", default=SHA256)
    newest_event_time: str | None = field(name="newestEventTime", default=None)
    oldest_event_time: str | None = field(name="oldestEventTime", default=None)


class Digest(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of one digest file.

    Required without a default, as the AWS CLI requires them before validating: the location, the time range,
    the key fingerprint, ``previousDigestSignature`` (present, ``null`` in a starting digest) and ``logFiles``
    (``[]`` for an hour without files). A digest that lacks ``logFiles`` is malformed, not empty: reading it
    as "no files" would let a truncated digest prove completeness.
    """

    aws_account_id: str = field(name="awsAccountId")
    digest_start_time: str = field(name="digestStartTime")
    digest_end_time: str = field(name="digestEndTime")
    digest_s3_bucket: str = field(name="digestS3Bucket")
    digest_s3_object: str = field(name="digestS3Object")
    digest_public_key_fingerprint: str = field(name="digestPublicKeyFingerprint")
    digest_signature_algorithm: str = field(name="digestSignatureAlgorithm", default=SHA256_WITH_RSA)
    newest_event_time: str | None = field(name="newestEventTime", default=None)
    oldest_event_time: str | None = field(name="oldestEventTime", default=None)
    # All five are null in a starting digest (validation just enabled, or re-enabled, or logging restarted).
    previous_digest_s3_bucket: str | None = field(name="previousDigestS3Bucket", default=None)
    previous_digest_s3_object: str | None = field(name="previousDigestS3Object", default=None)
    previous_digest_hash_value: str | None = field(name="previousDigestHashValue", default=None)
    previous_digest_hash_algorithm: str | None = field(name="previousDigestHashAlgorithm", default=None)
    previous_digest_signature: str | None = field(name="previousDigestSignature")
    log_files: list[LogFileEntry] = field(name="logFiles")

    @property
    def start(self) -> datetime:
        return parse_time(self.digest_start_time)

    @property
    def end(self) -> datetime:
        return parse_time(self.digest_end_time)

    @property
    def is_starting(self) -> bool:
        """A starting digest has no predecessor: the chain begins (or begins again) here."""
        return self.previous_digest_signature is None and self.previous_digest_s3_object is None


class ChainLink(msgspec.Struct, frozen=True, kw_only=True):
    """What the *next* digest must point back to: small, so a pipeline can keep (and persist) one per chain."""

    bucket: str
    key: str
    # x-amz-meta-signature of this digest (hex); the next digest's previousDigestSignature.
    signature: str
    # Hex SHA-256 of this digest's uncompressed bytes; the next digest's previousDigestHashValue.
    sha256: str
    digest_end_time: str


class DigestFile(msgspec.Struct, frozen=True, kw_only=True):
    """A digest as fetched: where it was read, its parsed body, the hash of its bytes and its S3 signature."""

    bucket: str
    key: str
    digest: Digest
    # Hex SHA-256 of the uncompressed bytes, computed once: the signing string and the chain both need it.
    sha256: str
    # x-amz-meta-signature / x-amz-meta-signature-algorithm; "" when the object carries none.
    signature: str
    signature_algorithm: str

    def link(self) -> ChainLink:
        return ChainLink(
            bucket=self.bucket,
            key=self.key,
            signature=self.signature,
            sha256=self.sha256,
            digest_end_time=self.digest.digest_end_time,
        )


class DigestFormatError(DecodeError):
    """A digest object is not a readable digest; ``reason``: not_gzip, corrupt_gzip, not_json or not_digest.

    The pipeline reports it as a ``digest_signature_invalid`` alert (the AWS CLI says "INVALID: invalid
    format"): an unreadable digest proves nothing, and must not pass for an hour without files.
    """

    def __init__(self, key: str, reason: str, detail: str) -> None:
        super().__init__(f"{key}: {reason}: {detail}")
        self.key = key
        self.reason = reason
        self.detail = detail


_DIGEST_DECODER = msgspec.json.Decoder(Digest)


def parse_time(value: str) -> datetime:
    """CloudTrail's UTC extended format (``2015-08-17T15:01:31Z``) as an aware datetime."""
    return datetime.fromisoformat(value).astimezone(UTC)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inflate(data: bytes, key: str = "") -> bytes:
    """The uncompressed bytes of a digest or log object; plain JSON passes through unchanged.

    Idempotent on purpose: every hash CloudTrail records is over uncompressed content, so callers may hand
    either what S3 returned or what they already inflated, and get the same answer.
    """
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except EOFError as exc:
        raise DigestFormatError(key, "corrupt_gzip", f"truncated gzip: {exc}") from exc
    except (OSError, zlib.error) as exc:
        raise DigestFormatError(key, "corrupt_gzip", str(exc)) from exc


def parse_digest(data: bytes, key: str = "") -> Digest:
    """A digest's body, gzip (as CloudTrail writes it) or plain JSON; malformed input raises DigestFormatError."""
    if data[:2] != GZIP_MAGIC and data.lstrip()[:1] != b"{":
        raise DigestFormatError(key, "not_gzip", f"neither gzip nor a JSON object (starts {data[:4]!r})")
    raw = inflate(data, key)
    try:
        return _DIGEST_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise DigestFormatError(key, "not_digest", f"not a CloudTrail digest: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise DigestFormatError(key, "not_json", str(exc)) from exc


def load_digest_file(body: bytes, *, bucket: str, key: str, metadata: Mapping[str, str]) -> DigestFile:
    """A fetched digest object -> :class:`DigestFile`.

    ``metadata`` is S3 GetObject's ``Metadata`` (user metadata, names without ``x-amz-meta-``; prefixed names
    are accepted too). A missing signature is not an error here: :func:`~ingester.integrity.verify.verify_signature`
    reports it as an invalid signature, so one path produces every alert.
    """
    raw = inflate(body, key)
    digest = parse_digest(raw, key)
    meta = {name.lower().removeprefix(_AMZ_META): value for name, value in metadata.items()}
    return DigestFile(
        bucket=bucket,
        key=key,
        digest=digest,
        sha256=sha256_hex(raw),
        signature=meta.get(SIGNATURE_METADATA, ""),
        signature_algorithm=meta.get(SIGNATURE_ALGORITHM_METADATA, ""),
    )


# --- where digests live ------------------------------------------------------------------------------------


def digest_prefix(shard: Shard) -> str:
    """``[prefix/]AWSLogs/[o-id/]<account>/CloudTrail-Digest/<region>/``: the sibling of the shard's log prefix."""
    head = f"{shard.key_prefix}/" if shard.key_prefix else ""
    org = f"{shard.org_id}/" if shard.org_id else ""
    return f"{head}AWSLogs/{org}{shard.account_id}/CloudTrail-Digest/{shard.region}/"


def is_digest_key(key: str) -> bool:
    name = key.rpartition("/")[2]
    return _DIGEST_MARK in name and name.endswith(_DIGEST_SUFFIX) and len(name) > _STAMP_WIDTH + len(_DIGEST_SUFFIX)


def digest_key_time(key: str) -> datetime | None:
    """The digest end time in the file name (``..._20150817T150131Z.json.gz``), or None for another name."""
    if not is_digest_key(key):
        return None
    stamp = key[-(_STAMP_WIDTH + len(_DIGEST_SUFFIX)) : -len(_DIGEST_SUFFIX)]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def chain_id(key: str) -> str:
    """The digest chain a key belongs to: its key without the date folders and the timestamp.

    One shard prefix can hold several chains (two trails delivering to the same place each sign their own, with
    the trail name and home region in the file name), so a pipeline keeps its last :class:`ChainLink` per chain,
    not per shard.
    """
    folder, _, name = key.rpartition("/")
    region_folder = folder.rsplit("/", 3)[0]  # drop YYYY/MM/DD
    stem = name[: -(_STAMP_WIDTH + len(_DIGEST_SUFFIX) + 1)]  # drop _<stamp>.json.gz
    return f"{region_folder}/{stem}"
